"""The SMTP raw limit: pre-built messages pushed over N persistent aiosmtplib connections, nothing else."""

from __future__ import annotations

import asyncio
import re
import time

import aiosmtplib

from herald.channels.base import Channel, EmailContent, RenderedMessage
from herald.channels.mime import BuiltEmail, build_email
from herald.core.clock import SystemClock

_DOT_STUFF = re.compile(rb"(?m)^\.")
TEXT = "Hello {i},\n\nYour order has shipped and should arrive within three working days.\n" * 12
HTML = "<html><body>" + "<p>Hello {i}, your order has <b>shipped</b>.</p>" * 24 + "</body></html>"


def prebuilt_messages(count: int, recipient: str, sender: str) -> list[BuiltEmail]:
    """Messages of about 2.3 kB (STACK.md §5's size), built before the clock starts."""
    now = SystemClock().now()
    messages = []
    for i in range(count):
        content = EmailContent(subject=f"Bench {i}", text=TEXT.format(i=i), html=HTML.format(i=i))
        rendered = RenderedMessage(
            reference=f"bench_{i}", channel=Channel.EMAIL, to=recipient, sender=sender, email=content
        )
        messages.append(build_email(rendered, default_sender=sender, now=now))
    return messages


async def _submit(client: aiosmtplib.SMTP, sender: str, recipient: str, stuffed: bytes) -> None:
    """One transaction with nothing but the protocol: MAIL, RCPT, DATA, pre-stuffed bytes, the final reply."""
    await client.mail(sender)
    await client.rcpt(recipient)
    start = await client.execute_command(b"DATA")
    if start.code != 354 or client.protocol is None:
        raise aiosmtplib.SMTPDataError(start.code, start.message)
    client.protocol.write(stuffed)
    reply = await client.protocol.read_response(timeout=60)
    if reply.code != 250:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)


async def _pump(host: str, port: int, batch: list[tuple[str, str, bytes]]) -> None:
    client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, local_hostname="herald.bench")
    await client.connect()
    try:
        for sender, recipient, stuffed in batch:
            await _submit(client, sender, recipient, stuffed)
    finally:
        await client.quit()


async def raw_smtp_throughput(
    host: str,
    port: int,
    count: int,
    connections: int,
    *,
    recipient: str = "bench@bench.invalid",
    sender: str = "herald-bench@localhost",
) -> float:
    """Send `count` pre-built messages over `connections` connections; return messages per second.

    The default recipient is in a non-local domain so a relay that discards (the CI postfix) does not fill
    a real mailbox.
    """
    # Dot-stuffing and the end-of-data line are part of "pre-built": the clock measures only the wire.
    messages = [
        (m.envelope_from, m.envelope_to, _DOT_STUFF.sub(b"..", m.data) + b".\r\n")
        for m in prebuilt_messages(count, recipient, sender)
    ]
    batches = [messages[i::connections] for i in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(_pump(host, port, batch) for batch in batches if batch))
    return count / (time.perf_counter() - started)
