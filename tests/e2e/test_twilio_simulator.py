"""The real Twilio adapter against the real simulator over loopback sockets, callbacks included."""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from herald.channels.base import Channel, EventKind, ProviderEvent, ProviderFailure, RenderedMessage, SignatureError
from herald.channels.simulator import DEFAULT_ACCOUNT_SID, SimulatorConfig, SimulatorServer
from herald.channels.twilio import TwilioSmsProvider, TwilioVoiceProvider, TwilioWhatsAppProvider
from herald.core.clock import SystemClock
from tests.e2e.twilio_support import TOKEN, Receiver, add_fault, eventually, receiver, settings_for, sim_log

SID = re.compile(r"^(SM|CA)[0-9a-f]{32}$")


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[SimulatorServer]:
    config = SimulatorConfig(TOKEN, callback_delay_seconds=0.01, log_path=tmp_path / "sim.jsonl")
    async with SimulatorServer(config) as server:
        yield server


@pytest.fixture
async def hooks() -> AsyncIterator[Receiver]:
    async with receiver() as collected:
        yield collected


def _message(
    channel: Channel, reference: str, body: str = "Your order shipped", to: str = "+15551230001"
) -> RenderedMessage:
    return RenderedMessage(reference=reference, channel=channel, to=to, body=body)


async def _events(
    provider: TwilioSmsProvider | TwilioVoiceProvider, hooks: Receiver, ref: str, n: int
) -> list[ProviderEvent]:
    async def enough() -> bool:
        return len(hooks.for_reference(ref)) >= n

    await eventually(enough)
    events: list[ProviderEvent] = []
    for callback in hooks.for_reference(ref):
        events.extend(provider.parse_callback(callback.url, callback.headers, callback.body))
    return events


async def test_sms_is_accepted_then_called_back_as_sent_and_delivered(sim: SimulatorServer, hooks: Receiver) -> None:
    provider = TwilioSmsProvider(settings_for(sim, hooks.base_url))
    receipt = await provider.send(_message(Channel.SMS, "att-sms-1"))

    assert SID.match(receipt.provider_message_id or "")
    assert (receipt.reference, receipt.provider, receipt.status) == ("att-sms-1", "twilio_sms", "queued")
    events = await _events(provider, hooks, "att-sms-1", 2)
    assert sorted(e.kind for e in events) == sorted([EventKind.SENT, EventKind.DELIVERED])
    assert {(e.reference, e.provider_message_id) for e in events} == {("att-sms-1", receipt.provider_message_id)}

    record = await provider.fetch(receipt.provider_message_id or "")
    assert record is not None
    assert (record.status, record.body, record.to) == ("delivered", "Your order shipped", "+15551230001")
    assert await provider.fetch("SM" + "0" * 32) is None
    await provider.aclose()


async def test_whatsapp_goes_out_with_channel_prefixes(sim: SimulatorServer, hooks: Receiver) -> None:
    provider = TwilioWhatsAppProvider(settings_for(sim, hooks.base_url))
    receipt = await provider.send(_message(Channel.WHATSAPP, "att-wa-1"))
    await provider.aclose()
    (entry,) = [e for e in await sim_log(sim) if e.get("sid") == receipt.provider_message_id]
    form = dict(entry["form"])  # type: ignore[arg-type]
    assert (form["To"], form["From"]) == ("whatsapp:+15551230001", "whatsapp:+15005550006")


async def test_voice_call_says_escaped_text_and_reports_progress(sim: SimulatorServer, hooks: Receiver) -> None:
    provider = TwilioVoiceProvider(settings_for(sim, hooks.base_url))
    receipt = await provider.send(_message(Channel.VOICE, "att-call-1", body="Fish & chips <today>"))

    assert (receipt.provider_message_id or "").startswith("CA")
    (entry,) = [e for e in await sim_log(sim) if e.get("sid") == receipt.provider_message_id]
    assert dict(entry["form"])["Twiml"] == "<Response><Say>Fish &amp; chips &lt;today&gt;</Say></Response>"  # type: ignore[arg-type]
    events = await _events(provider, hooks, "att-call-1", 4)
    kinds = {EventKind.QUEUED, EventKind.SENT, EventKind.ANSWERED, EventKind.DELIVERED}
    assert {e.kind for e in events} == kinds
    assert all(e.occurred_at is not None for e in events)
    await provider.aclose()


async def test_undelivered_outcome_carries_the_carrier_error(sim: SimulatorServer, hooks: Receiver) -> None:
    await add_fault(sim, kind="undelivered", to="+15551230002", code=30003)
    provider = TwilioSmsProvider(settings_for(sim, hooks.base_url))
    await provider.send(_message(Channel.SMS, "att-sms-2", to="+15551230002"))
    events = await _events(provider, hooks, "att-sms-2", 2)
    await provider.aclose()
    final = [e for e in events if e.kind is EventKind.UNDELIVERED]
    assert [e.error_code for e in final] == ["30003"]


async def test_a_tampered_callback_is_refused(sim: SimulatorServer, hooks: Receiver) -> None:
    provider = TwilioSmsProvider(settings_for(sim, hooks.base_url))
    await provider.send(_message(Channel.SMS, "att-sms-3"))
    await _events(provider, hooks, "att-sms-3", 1)
    callback = hooks.for_reference("att-sms-3")[0]
    forged = callback.body.replace(b"MessageStatus=", b"MessageStatus=failed&Ignored=")
    with pytest.raises(SignatureError):
        provider.parse_callback(callback.url, callback.headers, forged)
    with pytest.raises(SignatureError):
        provider.parse_callback(callback.url.replace("att-sms-3", "att-sms-4"), callback.headers, callback.body)
    await provider.aclose()


async def test_reconciliation_finds_the_submission_by_recipient_body_and_time(
    sim: SimulatorServer, hooks: Receiver
) -> None:
    provider = TwilioSmsProvider(settings_for(sim, hooks.base_url))
    before = SystemClock().now() - dt.timedelta(seconds=1)
    message = _message(Channel.SMS, "att-sms-5", body="Reconcile me", to="+15551230005")
    receipt = await provider.send(message)
    await provider.send(_message(Channel.SMS, "att-sms-6", body="Something else", to="+15551230005"))

    found = await provider.find_submissions(message, since=before)
    assert [r.sid for r in found] == [receipt.provider_message_id]
    later = SystemClock().now() + dt.timedelta(hours=1)
    assert await provider.find_submissions(message, since=later) == ()
    await provider.aclose()


async def test_wrong_credentials_are_a_provider_problem(sim: SimulatorServer, hooks: Receiver) -> None:
    provider = TwilioSmsProvider(settings_for(sim, hooks.base_url, auth_token="not-the-token"))
    with pytest.raises(ProviderFailure) as caught:
        await provider.send(_message(Channel.SMS, "att-sms-7"))
    await provider.aclose()
    assert caught.value.code == "20003"


async def test_every_request_is_logged_as_a_json_line(sim: SimulatorServer, hooks: Receiver, tmp_path: Path) -> None:
    provider = TwilioSmsProvider(settings_for(sim, hooks.base_url))
    receipt = await provider.send(_message(Channel.SMS, "att-sms-8"))
    await provider.aclose()
    lines = [json.loads(line) for line in (tmp_path / "sim.jsonl").read_text().splitlines()]
    created = [line for line in lines if line["outcome"] == "created"]
    assert [line["sid"] for line in created] == [receipt.provider_message_id]
    assert created[0]["method"] == "POST"
    assert created[0]["path"].endswith(f"/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json")


def test_herald_simulator_command_serves_on_the_port_it_prints(tmp_path: Path) -> None:
    log = tmp_path / "cli-sim.jsonl"
    herald = Path(sys.executable).with_name("herald")
    process = subprocess.Popen(
        [str(herald), "simulator", "--port", "0", "--log", str(log), "--auth-token", TOKEN],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        response = httpx.post(
            f"{match.group(1)}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json",
            data={"To": "+15551230009", "From": "+15005550006", "Body": "hi"},
            auth=(DEFAULT_ACCOUNT_SID, TOKEN),
            timeout=20,
        )
        assert response.status_code == 201
        assert SID.match(response.json()["sid"])
        logged = [json.loads(x) for x in log.read_text().splitlines()]
        assert [entry["sid"] for entry in logged if entry["outcome"] == "created"] == [response.json()["sid"]]
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it captured.
    assert process.returncode == -signal.SIGTERM
    assert "Traceback" not in errors
