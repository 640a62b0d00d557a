"""The provider fault matrix: each scripted fault must surface as the right delivery error class."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.channels.base import (
    Channel,
    MessageRejected,
    OutcomeUnknown,
    ProviderFailure,
    RateLimited,
    RenderedMessage,
)
from herald.channels.simulator import SimulatorConfig, SimulatorServer
from herald.channels.twilio import TwilioSmsProvider, TwilioWhatsAppProvider
from herald.core.clock import SystemClock
from tests.e2e.twilio_support import TOKEN, add_fault, eventually, settings_for, sim_log

READ_TIMEOUT = 0.5


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SimulatorConfig(TOKEN, callback_delay_seconds=0.01)) as server:
        yield server


@pytest.fixture
async def sms(sim: SimulatorServer) -> AsyncIterator[TwilioSmsProvider]:
    # Callbacks go to a closed port: this file is about the create call, not about callbacks.
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=READ_TIMEOUT))
    provider = TwilioSmsProvider(settings_for(sim, "http://127.0.0.1:9"), client=client)
    yield provider
    await client.aclose()


def _message(to: str, reference: str = "att-1", body: str = "Hi") -> RenderedMessage:
    return RenderedMessage(reference=reference, channel=Channel.SMS, to=to, body=body)


async def _submissions(sim: SimulatorServer, to: str) -> list[dict[str, object]]:
    return [e for e in await sim_log(sim) if e.get("submitted") and dict(e["form"]).get("To") == to]  # type: ignore[call-overload]


async def test_429_is_rate_limited_with_retry_after(sim: SimulatorServer, sms: TwilioSmsProvider) -> None:
    await add_fault(sim, kind="rate_limit", to="+15551110001", retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await sms.send(_message("+15551110001"))
    assert caught.value.retry_after == 7.0
    assert caught.value.code == "20429"
    assert await _submissions(sim, "+15551110001") == []
    # One use by default: the next attempt goes through.
    assert (await sms.send(_message("+15551110001"))).provider_message_id


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_a_provider_failure(sim: SimulatorServer, sms: TwilioSmsProvider, status: int) -> None:
    await add_fault(sim, kind="server_error", status=status)
    with pytest.raises(ProviderFailure) as caught:
        await sms.send(_message("+15551110002"))
    assert not isinstance(caught.value, RateLimited)
    assert f"HTTP {status}" in str(caught.value)


async def _refused(sim: SimulatorServer) -> bool:
    try:
        _, writer = await asyncio.open_connection(sim.host, sim.port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_connection_refused_is_a_provider_failure(sim: SimulatorServer, sms: TwilioSmsProvider) -> None:
    await add_fault(sim, kind="refuse", seconds=120)
    await eventually(lambda: _refused(sim))
    with pytest.raises(ProviderFailure) as caught:
        await sms.send(_message("+15551110003"))
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert not isinstance(caught.value, OutcomeUnknown)

    await sim.accept_connections()
    assert (await sms.send(_message("+15551110003"))).provider_message_id
    assert len(await _submissions(sim, "+15551110003")) == 1


async def test_reset_after_accept_is_unknown_and_was_submitted_once(
    sim: SimulatorServer, sms: TwilioSmsProvider
) -> None:
    await add_fault(sim, kind="reset", to="+15551110004")
    since = SystemClock().now() - dt.timedelta(seconds=1)
    message = _message("+15551110004", body="Your code is 1234")
    with pytest.raises(OutcomeUnknown) as caught:
        await sms.send(message)
    assert isinstance(caught.value.__cause__, httpx.ReadError | httpx.RemoteProtocolError)

    (submitted,) = await _submissions(sim, "+15551110004")
    assert submitted["outcome"] == "reset"
    # Reconciliation recovers the SID the client never saw.
    found = await sms.find_submissions(message, since=since)
    assert [record.sid for record in found] == [submitted["sid"]]


async def test_hang_is_unknown_after_the_read_timeout(sim: SimulatorServer, sms: TwilioSmsProvider) -> None:
    await add_fault(sim, kind="hang", to="+15551110005")
    with pytest.raises(OutcomeUnknown) as caught:
        await sms.send(_message("+15551110005"))
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    log = [e for e in await sim_log(sim) if e["outcome"] == "hang"]
    assert len(log) == 1
    assert await _submissions(sim, "+15551110005") == []


async def test_invalid_number_is_rejected_with_21211(sms: TwilioSmsProvider) -> None:
    with pytest.raises(MessageRejected) as caught:
        await sms.send(_message("5551234"))
    assert caught.value.code == "21211"


@pytest.mark.parametrize(
    ("to", "kind", "code"),
    [
        ("+15005550001", MessageRejected, "21211"),
        ("+15005550004", MessageRejected, "21610"),
        ("+15005550009", MessageRejected, "21614"),
        ("+15005550003", ProviderFailure, "21408"),
    ],
)
async def test_magic_numbers_answer_like_twilio(
    sms: TwilioSmsProvider, to: str, kind: type[Exception], code: str
) -> None:
    with pytest.raises(kind) as caught:
        await sms.send(_message(to))
    assert type(caught.value) is kind
    assert getattr(caught.value, "code", None) == code


async def test_scripted_rejection_outside_the_whatsapp_window(sim: SimulatorServer) -> None:
    await add_fault(sim, kind="reject", to="+15551110006", code=63016)
    provider = TwilioWhatsAppProvider(settings_for(sim, "http://127.0.0.1:9"))
    message = RenderedMessage(reference="att-wa", channel=Channel.WHATSAPP, to="+15551110006", body="Hi")
    with pytest.raises(MessageRejected) as caught:
        await provider.send(message)
    await provider.aclose()
    assert caught.value.code == "63016"


async def test_bad_fault_rules_are_refused(sim: SimulatorServer) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        assert (await client.post("/_sim/faults", json={"kind": "explode"})).status_code == 400
        assert (await client.post("/_sim/faults", json={"kind": "hang", "times": 0})).status_code == 400
        await client.post("/_sim/faults", json=[{"kind": "hang", "times": None}, {"kind": "reset"}])
        assert [rule["kind"] for rule in (await client.get("/_sim/faults")).json()] == ["hang", "reset"]
        assert (await client.delete("/_sim/faults")).status_code == 204
        assert (await client.get("/_sim/faults")).json() == []
