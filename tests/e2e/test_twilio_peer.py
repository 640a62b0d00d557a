"""Twilio's official helper library as the simulator's peer: its client drives the simulator, and its
RequestValidator judges the signatures on the simulator's callbacks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from herald.channels.simulator import DEFAULT_ACCOUNT_SID, SimulatorConfig, SimulatorServer
from tests.e2e.twilio_support import TOKEN

Received = list[tuple[str, dict[str, str], str]]


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorConfig(TOKEN, callback_delay_seconds=0.01)).in_thread() as server:
        yield server


@pytest.fixture
def client(sim: SimulatorServer) -> Client:
    twilio = Client(DEFAULT_ACCOUNT_SID, TOKEN)
    # The REST domain's base URL is a plain attribute; every v2010 resource resolves against it.
    twilio.api.base_url = sim.base_url
    return twilio


@pytest.fixture
def hooks() -> Iterator[tuple[str, Received]]:
    """A stdlib HTTP server on a loopback port that records each callback's URL, headers and raw body."""
    received: Received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            host, port = self.server.server_address[:2]
            received.append((f"http://{host}:{port}{self.path}", dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _wait_for(received: Received, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(received) < count:
        assert time.monotonic() < deadline, f"only {len(received)} callbacks arrived"
        time.sleep(0.02)


def test_official_client_creates_fetches_and_lists(client: Client) -> None:
    created = client.messages.create(to="+15557770001", from_="+15005550006", body="Hello from twilio-python")
    assert created.sid.startswith("SM") and len(created.sid) == 34
    assert created.status == "queued"
    assert created.date_created is not None

    fetched = client.messages(created.sid).fetch()
    assert (fetched.sid, fetched.body, fetched.to) == (created.sid, "Hello from twilio-python", "+15557770001")

    second = client.messages.create(to="+15557770001", from_="+15005550006", body="Second")
    client.messages.create(to="+15557770002", from_="+15005550006", body="Elsewhere")
    # A page size of one makes the library follow next_page_uri across pages.
    listed = client.messages.list(to="+15557770001", page_size=1)
    assert [m.sid for m in listed] == [second.sid, created.sid]


def test_official_client_sees_twilio_shaped_errors(client: Client) -> None:
    with pytest.raises(TwilioRestException) as caught:
        client.messages.create(to="not-a-number", from_="+15005550006", body="x")
    assert (caught.value.status, caught.value.code) == (400, 21211)


def test_official_client_places_a_call(client: Client) -> None:
    call = client.calls.create(to="+15557770003", from_="+15005550006", twiml="<Response><Say>Hi</Say></Response>")
    assert call.sid.startswith("CA") and len(call.sid) == 34
    assert client.calls(call.sid).fetch().to == "+15557770003"


def test_request_validator_accepts_the_simulators_callbacks(client: Client, hooks: tuple[str, Received]) -> None:
    base, received = hooks
    client.messages.create(
        to="+15557770004", from_="+15005550006", body="Track me", status_callback=f"{base}/status?hub_msg=att-9"
    )
    _wait_for(received, 2)
    validator = RequestValidator(TOKEN)
    for url, headers, body in received:
        params = dict(parse_qsl(body, keep_blank_values=True))
        assert validator.validate(url, params, headers["X-Twilio-Signature"]), (url, params)

    url, headers, body = received[0]
    params = dict(parse_qsl(body, keep_blank_values=True))
    signature = headers["X-Twilio-Signature"]
    assert not validator.validate(url, params | {"MessageStatus": "failed"}, signature)
    assert not validator.validate(url.replace("att-9", "att-8"), params, signature)
    assert not RequestValidator("another-token").validate(url, params, signature)
    assert {dict(parse_qsl(b))["MessageStatus"] for _, _, b in received} == {"sent", "delivered"}
