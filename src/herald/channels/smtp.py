"""The SMTP e-mail provider: a small pool of persistent connections, and SMTP reply classification."""

from __future__ import annotations

import asyncio
import os
import re
import select
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus
from aiosmtplib.protocol import SMTPProtocol

from herald.channels.base import (
    Channel,
    DeliveryError,
    FinalDotMarks,
    MessageRejected,
    OutcomeKind,
    OutcomeUnknown,
    ProviderEvent,
    ProviderFailure,
    ProviderOutcome,
    RateLimited,
    Receipt,
    RenderedMessage,
    Severity,
    SignatureError,
)
from herald.channels.mime import BuiltEmail, build_email, parse_mailbox
from herald.channels.mime import message_id as format_message_id
from herald.core.clock import Clock

_DOT_STUFF = re.compile(rb"(?m)^\.")
_FINAL_DOT = b".\r\n"
_RATE_WORDS = re.compile(
    r"rate.?limit|too many (?:connections|messages|mails|sessions|requests)|throttl|greylist|slow down",
    re.IGNORECASE,
)
# RFC 3463 enhanced status code at the start of the reply text: class.subject.detail.
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# Subjects that are about the recipient's address or mailbox (RFC 3463 §3.2, §3.3), not our content or policy.
_ADDRESS_SUBJECTS = {"1", "2"}
_DELAY = re.compile(r"(\d+)\s*(seconds?|secs?|s|minutes?|mins?)\b", re.IGNORECASE)
# Errors that leave nothing submitted: the socket failed before DATA was answered with 354.
_TRANSPORT_ERRORS = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError)


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"  # required: refuse to send if the server does not offer it
    TLS = "tls"  # implicit TLS from the first byte (port 465)
    PLAIN = "plain"  # no TLS at all (a local relay on loopback)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 587
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = None
    default_sender: str = ""
    pool_size: int = 4
    connect_timeout: float = 10.0
    command_timeout: float = 60.0  # per reply, including the one after the final dot
    local_hostname: str | None = None
    tls_context: ssl.SSLContext | None = None


class _Submitted(Exception):
    """The final dot was written; whatever goes wrong from here leaves the outcome unknown."""


class _Pool:
    """At most `size` connections; idle ones are reused most-recent first so few stay warm."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self._slots = asyncio.Semaphore(config.pool_size)
        self._idle: list[aiosmtplib.SMTP] = []

    async def acquire(self) -> aiosmtplib.SMTP:
        await self._slots.acquire()
        return self._idle.pop() if self._idle else self._new_client()

    def release(self, client: aiosmtplib.SMTP, *, healthy: bool) -> None:
        if healthy and client.is_connected:
            self._idle.append(client)
        else:
            client.close()
        self._slots.release()

    def _new_client(self) -> aiosmtplib.SMTP:
        cfg = self._config
        return aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=cfg.password,
            local_hostname=cfg.local_hostname,
            timeout=cfg.command_timeout,
            use_tls=cfg.security is SmtpSecurity.TLS,
            start_tls=cfg.security is SmtpSecurity.STARTTLS,
            tls_context=cfg.tls_context,
        )

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await client.quit(timeout=2)
            except (aiosmtplib.SMTPException, OSError):
                client.close()


def _retry_after(text: str) -> float | None:
    match = _DELAY.search(text)
    if match is None:
        return None
    seconds = float(match.group(1))
    return seconds * 60 if match.group(2).lower().startswith("m") else seconds


def bounce_of(code: int, text: str, *, stage: str) -> ProviderOutcome | None:
    """The bounce a refusing reply means for the recipient's address, if any.

    Hard: a 5xx at RCPT or DATA whose enhanced code is permanent and about the address or mailbox
    (5.1.x bad address, 5.2.x mailbox disabled), except 5.2.2 "mailbox full", which is soft.
    Soft: a 4xx at RCPT or DATA about the mailbox (4.2.x, 4.1.x) and a 552 5.2.2. Content, policy and
    rate refusals (5.7.x, 4.7.x, no enhanced code) say nothing about the address and never suppress it.
    """
    match = _ENHANCED.match(text)
    if stage not in {"rcpt", "data"} or match is None:
        return None
    klass, subject, detail_code = match.groups()
    enhanced = f"{klass}.{subject}.{detail_code}"
    if subject not in _ADDRESS_SUBJECTS or _RATE_WORDS.search(text):
        return None
    said = f"{code} {text}".strip()
    if 500 <= code < 600 and klass == "5" and enhanced != "5.2.2":
        return ProviderOutcome(OutcomeKind.BOUNCED, Severity.HARD, code=f"{code} {enhanced}", detail=said)
    if 400 <= code < 600 and klass in {"4", "5"}:
        return ProviderOutcome(OutcomeKind.BOUNCED, Severity.SOFT, code=f"{code} {enhanced}", detail=said)
    return None


def classify_reply(code: int, text: str, *, stage: str, provider: str) -> DeliveryError:
    """Map a refusing SMTP reply to the delivery error tree (RFC 5321 §4.2.1, WIRE-FORMATS.md §7)."""
    detail = f"SMTP {stage} refused: {code} {text}".strip()
    bounce = bounce_of(code, text, stage=stage)
    transient = 400 <= code < 500 or (stage == "rcpt" and code == 552)  # §4.5.3.1.10: 552 on RCPT is 452
    if transient and _RATE_WORDS.search(text):
        return RateLimited(detail, retry_after=_retry_after(text), provider=provider, code=str(code))
    if transient or not 500 <= code < 600:
        return ProviderFailure(detail, provider=provider, code=str(code), outcome=bounce)
    if stage in {"connect", "mail"}:
        # A refused session or sender is about our account or configuration, not this recipient.
        return ProviderFailure(detail, provider=provider, code=str(code))
    return MessageRejected(detail, provider=provider, code=str(code), outcome=bounce)


class SmtpEmailProvider:
    """Send e-mail through an SMTP relay, reusing up to `pool_size` connections."""

    channel = Channel.EMAIL
    rate_limit_per_second: float | None = None  # no declared limit

    def __init__(
        self, config: SmtpConfig, clock: Clock, *, name: str = "smtp", wire_marks: FinalDotMarks | None = None
    ) -> None:
        if config.pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.name = name
        # Told just before each final "." is written: a worker killed after that point may have had the
        # message accepted, one killed before it cannot have (the relay drops a transaction cut before the dot).
        self.wire_marks = wire_marks
        self._config = config
        self._clock = clock
        self._pool = _Pool(config)

    async def send(self, message: RenderedMessage) -> Receipt:
        built = build_email(message, default_sender=self._config.default_sender, now=self._clock.now())
        reply = await self._send_built(built, message.reference)
        return Receipt(
            reference=message.reference,
            provider=self.name,
            provider_message_id=built.message_id,
            status=str(reply.code),
            accepted_at=self._clock.now(),
        )

    def message_id(self, message: RenderedMessage) -> str:
        """The Message-ID `send` gives this message: what a relay's log can be searched for."""
        sender = parse_mailbox(message.sender or self._config.default_sender)
        return format_message_id(message.reference, sender.domain)

    def parse_callback(self, url: str, headers: Mapping[str, str], body: bytes) -> Sequence[ProviderEvent]:
        # SMTP has no callback channel: bounces come back as mail (DSNs) by another route. No request can
        # carry a verifiable signature here, so every one is refused unread.
        raise SignatureError(f"provider {self.name!r} accepts no callbacks")

    async def aclose(self) -> None:
        """QUIT idle connections; call on shutdown."""
        await self._pool.close()

    async def _send_built(self, built: BuiltEmail, reference: str) -> SMTPResponse:
        client = await self._pool.acquire()
        healthy = False
        try:
            reply = await self._send_with_reconnect(client, built, reference)
            healthy = True
            return reply
        except MessageRejected:
            healthy = await self._reset(client)
            raise
        except ProviderFailure as exc:
            healthy = exc.code not in {None, "421"} and await self._reset(client)
            raise
        finally:
            self._pool.release(client, healthy=healthy)

    async def _send_with_reconnect(self, client: aiosmtplib.SMTP, built: BuiltEmail, reference: str) -> SMTPResponse:
        reused = client.is_connected
        try:
            return await self._transaction(client, built, reference)
        except ProviderFailure as exc:
            # A pooled connection the server dropped while idle fails before anything is submitted;
            # one fresh connection is then safe to try. Reply-coded refusals are not retried here.
            if not reused or exc.code is not None:
                raise
        client.close()
        return await self._transaction(client, built, reference)

    async def _transaction(self, client: aiosmtplib.SMTP, built: BuiltEmail, reference: str) -> SMTPResponse:
        stage = "connect"
        try:
            if not client.is_connected:
                await client.connect(timeout=self._config.connect_timeout)
            stage = "mail"
            # After the first transaction (aiosmtplib's path, which says EHLO or HELO first), MAIL and RCPT
            # go without aiosmtplib's per-call address parsing: see _command.
            # An address that is not plain ASCII (SMTPUTF8) keeps aiosmtplib's path, which adds the option.
            fast = not client.is_ehlo_or_helo_needed and (built.envelope_from + built.envelope_to).isascii()
            await (_command(client, "MAIL", built.envelope_from) if fast else client.mail(built.envelope_from))
            stage = "rcpt"
            await (_command(client, "RCPT", built.envelope_to) if fast else client.rcpt(built.envelope_to))
            stage = "data"
            return await self._data(client, built.data, reference)
        except _Submitted as exc:
            client.close()
            cause = exc.__cause__
            raise OutcomeUnknown(
                f"connection lost after the final dot, before the reply: {cause}", provider=self.name
            ) from cause
        except aiosmtplib.SMTPResponseException as exc:
            raise classify_reply(exc.code, exc.message, stage=stage, provider=self.name) from exc
        except (*_TRANSPORT_ERRORS, aiosmtplib.SMTPException) as exc:
            client.close()
            raise ProviderFailure(f"SMTP {stage} failed: {exc!r}", provider=self.name) from exc
        except ValueError as exc:
            if stage not in {"mail", "rcpt"}:
                raise
            # aiosmtplib refuses addresses it cannot quote safely; mime.py should have caught them first.
            raise MessageRejected(str(exc), provider=self.name, code="invalid_address") from exc

    async def _data(self, client: aiosmtplib.SMTP, data: bytes, reference: str) -> SMTPResponse:
        """DATA in steps so we know whether the end-of-data dot left this process.

        Everything but the final ".\r\n" is written and flushed to the kernel first; then the wire mark is
        written (a synchronous os.write) and the dot right after it, with no await in between: a worker killed
        before the mark never wrote the dot, so the relay dropped the transaction and a re-send is safe.
        """
        start = await client.execute_command(b"DATA")
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        protocol = client.protocol
        if protocol is None or protocol.transport is None:
            raise aiosmtplib.SMTPServerDisconnected("connection lost before the message was sent")
        body = _DOT_STUFF.sub(b"..", data)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        protocol.write(body)
        fd = await self._flushed(protocol.transport)
        _mark_and_write_dot(self.wire_marks, reference, protocol, fd)
        try:
            reply = await protocol.read_response(timeout=self._config.command_timeout)
        except (*_TRANSPORT_ERRORS, aiosmtplib.SMTPException) as exc:
            raise _Submitted from exc
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        return reply

    async def _flushed(self, transport: asyncio.BaseTransport) -> int | None:
        """Wait until the transport holds no unsent bytes and, on a plain connection, until the kernel's socket
        buffer has room; return that socket's fd (None under TLS).

        Why: a killed process's user-space buffer is lost, what the kernel holds is still sent. With the fd,
        the dot is one os.write right after the mark's — the narrowest window a kill can land in (about a
        microsecond of interpreter work), and never into a user-space buffer that a full kernel would force.
        """
        writer = cast(asyncio.WriteTransport, transport)
        fd = _plain_socket_fd(transport)
        poller = select.poll()
        if fd is not None:
            poller.register(fd, select.POLLOUT)
        async with asyncio.timeout(self._config.command_timeout):
            delay = 0.0
            while writer.get_write_buffer_size() or (fd is not None and not poller.poll(0)):
                if writer.is_closing():
                    raise aiosmtplib.SMTPServerDisconnected("connection lost while the message was being sent")
                await asyncio.sleep(delay)
                delay = min(0.01, delay + 0.001)
        return fd

    async def _reset(self, client: aiosmtplib.SMTP) -> bool:
        """RSET after a refusal so the connection can carry the next message; False if that fails."""
        if not client.is_connected:
            return False
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            return False
        return True


async def _command(client: aiosmtplib.SMTP, verb: str, address: str) -> SMTPResponse:
    """MAIL FROM or RCPT TO, checked as aiosmtplib's mail() and rcpt() check them, without their quote_address
    (email.utils parsing, ~8 % of a send): mime.parse_mailbox has already reduced the address to a dot-atom
    local part at an ASCII domain, for which `<address>` is exactly what quote_address writes."""
    quoted = b"<" + address.encode("ascii") + b">"
    if verb == "MAIL":
        reply = await client.execute_command(b"MAIL", b"FROM:" + quoted)
        if reply.code != SMTPStatus.completed:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, address)
        return reply
    reply = await client.execute_command(b"RCPT", b"TO:" + quoted)
    if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, address)
    return reply


def _plain_socket_fd(transport: asyncio.BaseTransport) -> int | None:
    """The connection's socket fd when nothing sits between us and it (no TLS layer), else None."""
    if transport.get_extra_info("ssl_object") is not None:
        return None
    sock = transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


def _mark_and_write_dot(marks: FinalDotMarks | None, reference: str, protocol: SMTPProtocol, fd: int | None) -> None:
    """The wire mark, then the end-of-data dot: straight into the kernel when we hold the fd (the transport's
    buffer is empty, so no byte can overtake another), in the marks' own call so that nothing runs between
    the two; else through the transport. A refused or short write hands the rest to the transport (the mark
    is made); an error of the mark itself (a full disk) raises before anything of the dot left."""
    sent = 0
    if fd is not None:
        try:
            sent = marks.mark_then_write(reference, fd, _FINAL_DOT) if marks is not None else os.write(fd, _FINAL_DOT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent == len(_FINAL_DOT):
            return
    elif marks is not None:
        marks.before_final_dot(reference)
    protocol.write(_FINAL_DOT[sent:])
