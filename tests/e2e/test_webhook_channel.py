"""Signed webhooks end to end: a loopback HTTP receiver, the reference verifier, SSRF refusal, classification."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook

from herald.channels.base import (
    Channel,
    MessageRejected,
    OutcomeUnknown,
    ProviderFailure,
    RateLimited,
    RenderedMessage,
)
from herald.channels.webhook import SignedWebhookProvider, WebhookConfig
from herald.core.clock import FrozenClock, SystemClock

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LQ=="
BODY = '{"type": "message.delivered", "data": {"name": "Zoë"}}'


@dataclass
class Receiver:
    port: int
    mode: str = "ok"
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _make_handler(state: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            state.peers.append(self.client_address)
            if state.mode == "hang":
                state.release.wait(30)
                self.close_connection = True
                return
            if state.mode == "reset":
                self.close_connection = True
                return
            status, extra = {
                "ok": (204, {}),
                "gone": (410, {}),
                "slow": (429, {"Retry-After": "7"}),
                "bad_gateway": (502, {}),
                "unavailable": (503, {"Retry-After": "120"}),
                "redirect": (302, {"Location": "http://127.0.0.1:1/elsewhere"}),
                "not_found": (404, {}),
            }[state.mode]
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = Receiver(port=server.server_address[1])
    server.RequestHandlerClass = _make_handler(state)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _provider(
    *,
    allow_loopback: bool = True,
    secrets: tuple[str, ...] = (SECRET,),
    timeout: float = 10.0,
    clock: FrozenClock | SystemClock | None = None,
    https_only: bool = False,
) -> SignedWebhookProvider:
    config = WebhookConfig(
        secrets=secrets,
        allow_cidrs=("127.0.0.0/8",) if allow_loopback else (),
        allowed_schemes=frozenset({"https"} if https_only else {"http", "https"}),
        allowed_ports=None,
        timeout=timeout,
    )
    return SignedWebhookProvider(config, clock or SystemClock())


def _message(url: str, reference: str = "att_1", webhook_id: str | None = "msg_ledger_7") -> RenderedMessage:
    metadata = {"webhook_id": webhook_id} if webhook_id else {}
    return RenderedMessage(reference=reference, channel=Channel.WEBHOOK, to=url, body=BODY, metadata=metadata)


async def test_signed_post_is_received_and_verified_by_the_reference_library(receiver: Receiver) -> None:
    provider = _provider()
    receipt = await provider.send(_message(f"http://localhost:{receiver.port}/hooks/herald?x=1"))
    await provider.aclose()

    assert (receipt.status, receipt.provider_message_id, receipt.provider) == ("204", "msg_ledger_7", "webhook")
    [(path, headers, body)] = receiver.requests
    assert path == "/hooks/herald?x=1"
    assert body == BODY.encode()
    # Pinned to 127.0.0.1, yet the request still names the host it was addressed to.
    assert headers["host"] == f"localhost:{receiver.port}"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == "msg_ledger_7"
    assert Webhook(SECRET).verify(body, headers) == {"type": "message.delivered", "data": {"name": "Zoë"}}


async def test_tampered_delivery_fails_reference_verification(receiver: Receiver) -> None:
    provider = _provider()
    await provider.send(_message(f"http://127.0.0.1:{receiver.port}/"))
    await provider.aclose()
    [(_, headers, body)] = receiver.requests
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(SECRET).verify(body.replace(b"Zo", b"Jo"), headers)


async def test_rotation_signs_with_every_secret(receiver: Receiver) -> None:
    provider = _provider(secrets=(SECRET, OLD_SECRET))
    await provider.send(_message(f"http://127.0.0.1:{receiver.port}/"))
    await provider.aclose()
    [(_, headers, body)] = receiver.requests
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OLD_SECRET):
        Webhook(secret).verify(body, headers)


async def test_the_attempt_reference_is_the_id_when_no_ledger_id_is_given(receiver: Receiver) -> None:
    provider = _provider()
    receipt = await provider.send(_message(f"http://127.0.0.1:{receiver.port}/", "att_99", webhook_id=None))
    await provider.aclose()
    assert receipt.provider_message_id == "att_99"
    assert receiver.requests[0][1]["webhook-id"] == "att_99"


async def test_timestamp_comes_from_the_clock(receiver: Receiver) -> None:
    clock = FrozenClock(dt.datetime(2026, 2, 3, 4, 5, 6, tzinfo=dt.UTC))
    provider = _provider(clock=clock)
    await provider.send(_message(f"http://127.0.0.1:{receiver.port}/"))
    await provider.aclose()
    assert receiver.requests[0][1]["webhook-timestamp"] == str(int(clock.now().timestamp()))


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]"])
async def test_loopback_is_refused_without_the_allowance(receiver: Receiver, host: str) -> None:
    provider = _provider(allow_loopback=False)
    with pytest.raises(MessageRejected) as info:
        await provider.send(_message(f"http://{host}:{receiver.port}/"))
    await provider.aclose()
    assert info.value.code == "destination_refused"
    assert info.value.provider == "webhook"
    assert receiver.requests == []


async def test_http_and_odd_ports_are_refused_by_default(receiver: Receiver) -> None:
    provider = SignedWebhookProvider(WebhookConfig(secrets=(SECRET,)), SystemClock())
    for url in [f"http://127.0.0.1:{receiver.port}/", "https://example.com:8080/", "https://u:p@example.com/"]:
        with pytest.raises(MessageRejected) as info:
            await provider.send(_message(url))
        assert info.value.code == "invalid_url"
    await provider.aclose()
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("mode", "error", "code", "retry_after"),
    [
        ("gone", MessageRejected, "410", None),
        ("slow", RateLimited, "429", 7.0),
        ("unavailable", RateLimited, "503", 120.0),
        ("bad_gateway", ProviderFailure, "502", None),
        ("redirect", ProviderFailure, "302", None),
        ("not_found", ProviderFailure, "404", None),
    ],
)
async def test_non_2xx_answers_are_classified(
    receiver: Receiver, mode: str, error: type[Exception], code: str, retry_after: float | None
) -> None:
    receiver.mode = mode
    provider = _provider()
    with pytest.raises(error) as info:
        await provider.send(_message(f"http://127.0.0.1:{receiver.port}/"))
    await provider.aclose()
    assert type(info.value) is error
    assert getattr(info.value, "code", None) == code
    if isinstance(info.value, RateLimited):
        assert info.value.retry_after == retry_after
    assert len(receiver.requests) == 1  # the redirect was not followed


async def test_no_answer_after_the_body_was_sent_is_unknown(receiver: Receiver) -> None:
    receiver.mode = "hang"
    provider = _provider(timeout=0.5)
    with pytest.raises(OutcomeUnknown) as info:
        await provider.send(_message(f"http://127.0.0.1:{receiver.port}/"))
    await provider.aclose()
    assert info.value.__cause__ is not None
    assert len(receiver.requests) == 1  # it did arrive: exactly why this is "unknown", not "failed"


async def test_connection_closed_after_the_body_was_sent_is_unknown(receiver: Receiver) -> None:
    receiver.mode = "reset"
    provider = _provider()
    with pytest.raises(OutcomeUnknown):
        await provider.send(_message(f"http://127.0.0.1:{receiver.port}/"))
    await provider.aclose()
    assert len(receiver.requests) == 1


async def test_connection_refused_is_a_provider_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = _provider()
    with pytest.raises(ProviderFailure) as info:
        await provider.send(_message(f"http://127.0.0.1:{port}/"))
    await provider.aclose()
    assert type(info.value) is ProviderFailure
    assert info.value.__cause__ is not None


async def test_many_posts_reuse_connections(receiver: Receiver) -> None:
    provider = _provider()
    for i in range(5):
        await provider.send(_message(f"http://127.0.0.1:{receiver.port}/", f"att_{i}", webhook_id=f"msg_{i}"))
    await provider.aclose()
    assert [headers["webhook-id"] for _, headers, _ in receiver.requests] == [f"msg_{i}" for i in range(5)]
    assert len(set(receiver.peers)) == 1  # one keep-alive connection carried all five


def test_weak_or_missing_secrets_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="at least one"):
        SignedWebhookProvider(WebhookConfig(secrets=()), SystemClock())
    with pytest.raises(ValueError, match="24-64"):
        SignedWebhookProvider(WebhookConfig(secrets=("whsec_c2hvcnQ=",)), SystemClock())
