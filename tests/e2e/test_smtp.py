"""SMTP provider end to end: an in-process aiosmtpd server with scripted replies, and the real postfix."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import mailbox
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from herald.channels.base import (
    Channel,
    EmailContent,
    MessageRejected,
    OutcomeUnknown,
    ProviderFailure,
    RateLimited,
    RenderedMessage,
    SignatureError,
)
from herald.channels.maildir import MaildirEmailProvider
from herald.channels.smtp import SmtpConfig, SmtpEmailProvider, SmtpSecurity
from herald.core.clock import FrozenClock, SystemClock
from tests.helpers import free_port, postfix_address

NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
SUBJECT = "Grüße, Zoë — your order ✓"


@dataclass
class Handler:
    """aiosmtpd hooks; `mode` scripts how the server answers."""

    mode: str = "ok"
    received: list[tuple[tuple[str, int], bytes]] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None  # the server's loop (it runs in its own thread)
    over_tls: list[bool] = field(default_factory=list)
    last_server: Any = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        replies = {
            "rcpt_550": "550 5.1.1 <%s>: Recipient address rejected: User unknown",
            "rcpt_452": "452 4.5.3 Too many recipients",
            "rcpt_rate": "450 4.7.1 Rate limit exceeded, try again in 30 seconds",
        }
        if self.mode == "drop_at_rcpt":
            server.transport.close()
            return "250 OK"
        if self.mode in replies:
            return replies[self.mode].replace("%s", address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.mode == "data_451":
            return "451 4.3.0 Temporary local problem"
        if self.mode == "data_554":
            return "554 5.7.1 Message rejected as spam"
        if self.mode == "drop_after_dot":
            server.transport.close()
            return "250 OK"
        if self.mode == "hang_after_dot":
            await asyncio.sleep(3600)  # cancelled when the controller stops
        self.last_server = server
        # session.ssl is set by STARTTLS; an implicit-TLS transport carries its own ssl_object.
        self.over_tls.append(session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None)
        self.received.append((session.peer, envelope.original_content))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def smtpd() -> Iterator[tuple[Handler, int]]:
    handler = Handler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.loop = controller.loop
    try:
        yield handler, port
    finally:
        controller.stop()


def _provider(port: int, *, pool_size: int = 2, command_timeout: float = 30.0) -> SmtpEmailProvider:
    config = SmtpConfig(
        host="127.0.0.1",
        port=port,
        security=SmtpSecurity.PLAIN,
        default_sender="Herald Tests <herald@localhost>",
        pool_size=pool_size,
        command_timeout=command_timeout,
        local_hostname="herald.test",
    )
    return SmtpEmailProvider(config, FrozenClock(NOW))


def _message(reference: str, to: str = "Zoë Ünal <zoe@example.org>") -> RenderedMessage:
    content = EmailContent(
        subject=SUBJECT,
        text="Hallo Zoë,\nIhre Bestellung ist unterwegs.\n",
        html="<p>Hallo Zoë, Ihre Bestellung ist <b>unterwegs</b>.</p>",
        headers={
            "List-Unsubscribe": "<https://hub.example/u/tok-1>, <mailto:unsub@hub.example>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    return RenderedMessage(reference=reference, channel=Channel.EMAIL, to=to, email=content)


async def test_many_messages_over_few_connections(smtpd: tuple[Handler, int]) -> None:
    handler, port = smtpd
    provider = _provider(port, pool_size=3)
    receipts = await asyncio.gather(*(provider.send(_message(f"att_{i}")) for i in range(40)))
    await provider.aclose()

    assert [r.provider_message_id for r in receipts] == [f"<att_{i}@localhost>" for i in range(40)]
    assert all(r.status == "250" and r.provider == "smtp" and r.accepted_at == NOW for r in receipts)
    assert len(handler.received) == 40
    connections = {peer for peer, _ in handler.received}
    assert 1 <= len(connections) <= 3
    assert not any(handler.over_tls)

    parsed = email.message_from_bytes(handler.received[0][1], policy=email.policy.default)
    assert parsed["Subject"] == SUBJECT
    assert parsed["To"].addresses[0].display_name == "Zoë Ünal"
    assert parsed["From"].addresses[0].addr_spec == "herald@localhost"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Unsubscribe"].startswith("<https://hub.example/u/tok-1>")
    assert parsed["X-Herald-Reference"].startswith("att_")
    assert parsed["Date"] is not None and parsed["MIME-Version"] == "1.0"


async def test_sequential_sends_reuse_one_connection(smtpd: tuple[Handler, int]) -> None:
    handler, port = smtpd
    provider = _provider(port, pool_size=4)
    for i in range(5):
        await provider.send(_message(f"seq_{i}"))
    await provider.aclose()
    assert len({peer for peer, _ in handler.received}) == 1


async def test_recipient_550_is_rejected_with_its_code_and_the_connection_survives(
    smtpd: tuple[Handler, int],
) -> None:
    handler, port = smtpd
    provider = _provider(port, pool_size=1)
    handler.mode = "rcpt_550"
    with pytest.raises(MessageRejected) as info:
        await provider.send(_message("att_r1"))
    assert info.value.code == "550"
    assert "5.1.1" in str(info.value)
    assert isinstance(info.value.__cause__, Exception)

    handler.mode = "ok"
    await provider.send(_message("att_r2"))
    await provider.aclose()
    assert len(handler.received) == 1


@pytest.mark.parametrize(("mode", "code"), [("data_451", "451"), ("rcpt_452", "452")])
async def test_transient_4xx_is_a_provider_failure(smtpd: tuple[Handler, int], mode: str, code: str) -> None:
    handler, port = smtpd
    handler.mode = mode
    provider = _provider(port)
    with pytest.raises(ProviderFailure) as info:
        await provider.send(_message("att_t"))
    await provider.aclose()
    assert type(info.value) is ProviderFailure
    assert info.value.code == code
    assert info.value.__cause__ is not None


async def test_rate_limit_reply_is_rate_limited_with_the_servers_delay(smtpd: tuple[Handler, int]) -> None:
    handler, port = smtpd
    handler.mode = "rcpt_rate"
    provider = _provider(port)
    with pytest.raises(RateLimited) as info:
        await provider.send(_message("att_rl"))
    await provider.aclose()
    assert info.value.code == "450"
    assert info.value.retry_after == 30


async def test_content_refused_after_the_dot_is_rejected(smtpd: tuple[Handler, int]) -> None:
    handler, port = smtpd
    handler.mode = "data_554"
    provider = _provider(port)
    with pytest.raises(MessageRejected) as info:
        await provider.send(_message("att_spam"))
    await provider.aclose()
    assert info.value.code == "554"


async def test_connection_dropped_after_the_dot_is_an_unknown_outcome(smtpd: tuple[Handler, int]) -> None:
    handler, port = smtpd
    handler.mode = "drop_after_dot"
    provider = _provider(port, pool_size=1)
    with pytest.raises(OutcomeUnknown) as info:
        await provider.send(_message("att_drop"))
    assert info.value.__cause__ is not None

    # The pool replaces the dead connection: the next message goes through.
    handler.mode = "ok"
    receipt = await provider.send(_message("att_after"))
    await provider.aclose()
    assert receipt.provider_message_id == "<att_after@localhost>"
    assert [b"att_after" in data for _, data in handler.received] == [True]


async def test_connection_dropped_before_data_is_a_plain_failure(smtpd: tuple[Handler, int]) -> None:
    handler, port = smtpd
    handler.mode = "drop_at_rcpt"
    provider = _provider(port)
    with pytest.raises(ProviderFailure) as info:
        await provider.send(_message("att_early"))
    await provider.aclose()
    assert type(info.value) is ProviderFailure
    assert handler.received == []


async def test_no_reply_after_the_dot_is_an_unknown_outcome(smtpd: tuple[Handler, int]) -> None:
    handler, port = smtpd
    handler.mode = "hang_after_dot"
    provider = _provider(port, command_timeout=0.5)
    with pytest.raises(OutcomeUnknown):
        await provider.send(_message("att_hang"))
    await provider.aclose()


async def test_connection_refused_is_a_provider_failure() -> None:
    provider = _provider(free_port())
    with pytest.raises(ProviderFailure) as info:
        await provider.send(_message("att_refused"))
    await provider.aclose()
    assert type(info.value) is ProviderFailure
    assert isinstance(info.value.__cause__, OSError)


async def test_a_pooled_connection_closed_by_the_server_is_replaced(smtpd: tuple[Handler, int]) -> None:
    handler, port = smtpd
    provider = _provider(port, pool_size=1)
    await provider.send(_message("att_before"))
    # The server's idle timeout: it closes the connection the pool is keeping warm.
    assert handler.loop is not None and handler.last_server is not None
    handler.loop.call_soon_threadsafe(handler.last_server.transport.close)
    await asyncio.sleep(0.2)  # not needed for correctness: either way the pool must reconnect
    await provider.send(_message("att_again"))
    await provider.aclose()
    assert [ref in data for (_, data), ref in zip(handler.received, [b"att_before", b"att_again"], strict=True)]
    assert len({peer for peer, _ in handler.received}) == 2


def test_email_providers_accept_no_callbacks(tmp_path: Path) -> None:
    for provider in (_provider(25), MaildirEmailProvider(tmp_path, FrozenClock(NOW))):
        with pytest.raises(SignatureError):
            provider.parse_callback("https://hub.example/cb", {}, b"{}")


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"herald", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 235/535 itself


@pytest.mark.parametrize(("password", "accepted"), [("s3cret", True), ("wrong", False)])
async def test_auth_login(password: str, accepted: bool) -> None:
    handler, port = Handler(), free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        config = SmtpConfig(
            host="127.0.0.1",
            port=port,
            security=SmtpSecurity.PLAIN,
            username="herald",
            password=password,
            default_sender="herald@localhost",
            local_hostname="herald.test",
            command_timeout=10,
        )
        provider = SmtpEmailProvider(config, FrozenClock(NOW))
        if accepted:
            await provider.send(_message("att_auth"))
        else:
            with pytest.raises(ProviderFailure) as info:
                await provider.send(_message("att_auth"))
            assert info.value.code == "535"
        await provider.aclose()
    finally:
        controller.stop()
    assert len(handler.received) == int(accepted)


# --- TLS: STARTTLS and implicit TLS against a throwaway self-signed certificate ----------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def _tls_provider(port: int, security: SmtpSecurity, cafile: Path | None) -> SmtpEmailProvider:
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    config = SmtpConfig(
        host="127.0.0.1",
        port=port,
        security=security,
        default_sender="herald@localhost",
        local_hostname="herald.test",
        tls_context=context,
    )
    return SmtpEmailProvider(config, FrozenClock(NOW))


async def test_starttls_is_used_when_required(certificate: tuple[Path, Path]) -> None:
    handler, port = Handler(), free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=_server_context(certificate), require_starttls=True
    )
    controller.start()
    try:
        provider = _tls_provider(port, SmtpSecurity.STARTTLS, certificate[0])
        await provider.send(_message("att_tls1"))
        await provider.send(_message("att_tls2"))
        await provider.aclose()
    finally:
        controller.stop()
    assert handler.over_tls == [True, True]


async def test_implicit_tls(certificate: tuple[Path, Path]) -> None:
    handler, port = Handler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=_server_context(certificate))
    controller.start()
    try:
        provider = _tls_provider(port, SmtpSecurity.TLS, certificate[0])
        await provider.send(_message("att_tls3"))
        await provider.aclose()
    finally:
        controller.stop()
    assert handler.over_tls == [True]


async def test_an_untrusted_certificate_is_refused(certificate: tuple[Path, Path]) -> None:
    handler, port = Handler(), free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=_server_context(certificate), require_starttls=True
    )
    controller.start()
    try:
        provider = _tls_provider(port, SmtpSecurity.STARTTLS, cafile=None)
        with pytest.raises(ProviderFailure):
            await provider.send(_message("att_untrusted"))
        await provider.aclose()
    finally:
        controller.stop()
    assert handler.received == []


async def test_required_starttls_missing_on_the_server_is_a_failure(smtpd: tuple[Handler, int]) -> None:
    handler, port = smtpd
    provider = _tls_provider(port, SmtpSecurity.STARTTLS, cafile=None)
    with pytest.raises(ProviderFailure):
        await provider.send(_message("att_notls"))
    await provider.aclose()
    assert handler.received == []  # never falls back to plain text


# --- the real postfix on 127.0.0.1:25 ------------------------------------------------------------------


def _find_in_mbox(path: Path, message_id: str) -> email.message.Message | None:
    if not path.exists():
        return None
    box = mailbox.mbox(path, create=False)
    try:
        for message in box:
            if message["Message-ID"] == message_id:
                return message
    finally:
        box.close()
    return None


async def _wait_for_delivery(path: Path, message_id: str, deadline_s: float = 90.0) -> email.message.Message:
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        found = _find_in_mbox(path, message_id)
        if found is not None:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"{message_id} did not arrive in {path} within {deadline_s} s")


async def test_real_postfix_delivers_to_root_mailbox() -> None:
    host, port = postfix_address()
    config = SmtpConfig(
        host=host,
        port=port,
        security=SmtpSecurity.PLAIN,
        default_sender="Herald Tests <herald@localhost>",
        pool_size=1,
        local_hostname="herald.test",
    )
    provider = SmtpEmailProvider(config, SystemClock())
    reference = "pf_" + uuid.uuid4().hex
    receipt = await provider.send(_message(reference, to="Root Ünicode <root@localhost>"))
    await provider.aclose()
    assert receipt.status == "250"
    assert receipt.provider_message_id == f"<{reference}@localhost>"

    delivered = await _wait_for_delivery(Path("/var/mail/root"), f"<{reference}@localhost>")
    raw = delivered.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == SUBJECT
    assert parsed["X-Herald-Reference"] == reference
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = parsed.get_body(("plain",))
    assert plain is not None and "Ihre Bestellung ist unterwegs." in plain.get_content()
