"""The simulator's fault matrix through the real worker: retries, breaker, failover, reconciliation, receipts."""

from __future__ import annotations

import datetime as dt
import email
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.testclient import TestClient

from herald.api.app import create_app
from herald.channels.maildir import MaildirEmailProvider
from herald.channels.registry import ChannelRegistry
from herald.channels.simulator import SimulatorConfig, SimulatorServer
from herald.channels.twilio import build_providers
from herald.channels.twilio_signature import SIGNATURE_HEADER, compute_signature
from herald.contacts.service import ContactInput, record_consent, upsert_contact
from herald.core.actor import SYSTEM
from herald.core.clock import FrozenClock
from herald.db.runtime import Runtime
from herald.delivery import queries, service
from herald.delivery.bootstrap import simulator_auth_token
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer
from tests.e2e.twilio_support import TOKEN, add_fault, settings_for, sim_log
from tests.helpers import in_unit

PUBLIC = "http://herald.test"
SETTINGS = DeliverySettings(
    breaker_threshold=3,
    breaker_cooldown_seconds=60,
    delivery_max_retries=10,
    delivery_backoff_base_seconds=1,
    delivery_backoff_max_seconds=2,
    reconcile_delay_seconds=5,
    public_url=PUBLIC,
)


@pytest.fixture
async def sim(clock: FrozenClock) -> AsyncIterator[SimulatorServer]:
    # The simulator shares the frozen clock, so reconciliation's "created since" window lines up.
    async with SimulatorServer(SimulatorConfig(TOKEN, callback_delay_seconds=0.01), clock=clock) as server:
        yield server


@pytest.fixture
async def deliverer(runtime: Runtime, sim: SimulatorServer) -> AsyncIterator[Deliverer]:
    client = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
    # Callbacks go to a closed port here; receipts are posted to the hook explicitly where a test needs one.
    twilio = build_providers(settings_for(sim, "http://127.0.0.1:9"), client=client, clock=runtime.clock)
    email_provider = MaildirEmailProvider(runtime.settings.data_dir / "maildir", runtime.clock)
    registry = ChannelRegistry([*twilio, email_provider])
    yield Deliverer(runtime, registry, SETTINGS)
    await client.aclose()


def _person(runtime: Runtime, phone: str, **consent: str) -> int:
    data = ContactInput(
        emails=[f"p{phone[-4:]}@example.com"], phones=[phone], fields={"timezone": "Europe/London"}, consent=consent
    )
    person_id, _ = upsert_contact(runtime.engine, runtime.clock, data, default_region="US")
    return person_id


def _send(runtime: Runtime, person_id: int, key: str, channels: list[str], message_class: str = "transactional") -> int:
    request = service.SendRequest(
        message_class=message_class,
        channels=channels,
        contact_id=person_id,
        content={"sms": {"body": f"Code {key}"}, "email": {"subject": "Your code", "text": f"Code {key}"}},
    )
    result = service.submit_message(runtime, "test", key, {"key": key}, request, SETTINGS)
    assert result.body["status"] == "queued", result.body
    return int(result.body["id"])


def _detail(runtime: Runtime, message_id: int) -> dict[str, Any]:
    return queries.message_detail(runtime.engine, message_id)


async def _submitted(sim: SimulatorServer, to: str) -> list[dict[str, Any]]:
    return [e for e in await sim_log(sim) if e.get("submitted") and dict(e["form"]).get("To") == to]  # type: ignore[call-overload]


def _mails(runtime: Runtime) -> list[email.message.Message]:
    folder: Path = runtime.settings.data_dir / "maildir" / "new"
    return [email.message_from_bytes(p.read_bytes()) for p in folder.iterdir()] if folder.exists() else []


async def test_plain_sms_goes_once(runtime: Runtime, deliverer: Deliverer, sim: SimulatorServer) -> None:
    message_id = _send(runtime, _person(runtime, "+12125550101"), "plain", ["sms", "email"])
    assert await deliverer.run_pass() == 1
    detail = _detail(runtime, message_id)
    assert detail["status"] == "sent" and detail["provider"] == "twilio_sms"
    [attempt] = detail["attempts"]
    [entry] = await _submitted(sim, "+12125550101")
    assert attempt["provider_message_id"] == entry["sid"]
    assert f"hub_msg={attempt['reference']}" in dict(entry["form"])["StatusCallback"]
    assert _mails(runtime) == []


async def test_429_retries_exactly_at_retry_after(
    runtime: Runtime, deliverer: Deliverer, sim: SimulatorServer, clock: FrozenClock
) -> None:
    await add_fault(sim, kind="rate_limit", to="+12125550102", retry_after=7)
    message_id = _send(runtime, _person(runtime, "+12125550102"), "r429", ["sms", "email"])
    start = clock.now()
    assert await deliverer.run_pass() == 1
    detail = _detail(runtime, message_id)
    assert detail["status"] == "retry_wait"
    assert detail["available_at"] == start + dt.timedelta(seconds=7)
    assert [(a["status"], a["error_code"]) for a in detail["attempts"]] == [("retry", "20429")]
    clock.advance(dt.timedelta(seconds=6))
    assert await deliverer.run_pass() == 0
    clock.advance(dt.timedelta(seconds=1))
    assert await deliverer.run_pass() == 1
    detail = _detail(runtime, message_id)
    assert detail["status"] == "sent" and detail["provider"] == "twilio_sms"
    assert len(await _submitted(sim, "+12125550102")) == 1
    assert _mails(runtime) == []


async def test_5xx_retries_then_the_breaker_opens_and_the_plan_fails_over(
    runtime: Runtime, deliverer: Deliverer, sim: SimulatorServer, clock: FrozenClock
) -> None:
    await add_fault(sim, kind="server_error", to="+12125550103", status=503, times=None)
    message_id = _send(runtime, _person(runtime, "+12125550103"), "r5xx", ["sms", "email"])
    for _ in range(3):
        assert await deliverer.run_pass() == 1
        assert _detail(runtime, message_id)["status"] == "retry_wait"
        clock.advance(dt.timedelta(seconds=3))  # past the (capped, jittered) backoff
    health = {p["provider"]: p for p in service.provider_health(runtime)}
    assert health["twilio_sms"]["state"] == "open" and health["twilio_sms"]["failures"] == 3
    assert await deliverer.run_pass() == 1
    detail = _detail(runtime, message_id)
    assert detail["status"] == "sent" and detail["provider"] == "maildir"
    assert [a["channel"] for a in detail["attempts"]] == ["sms", "sms", "sms", "email"]
    assert detail["skips"][-1]["reason"] == "breaker_open:twilio_sms"
    assert len(_mails(runtime)) == 1
    assert await _submitted(sim, "+12125550103") == []

    # After the cooldown one probe goes; when it succeeds the breaker closes again.
    await sim_clear(sim)
    clock.advance(dt.timedelta(seconds=61))
    other = _send(runtime, _person(runtime, "+12125550104"), "probe", ["sms", "email"])
    assert await deliverer.run_pass() == 1
    assert _detail(runtime, other)["provider"] == "twilio_sms"
    health = {p["provider"]: p for p in service.provider_health(runtime)}
    assert health["twilio_sms"]["state"] == "closed" and health["twilio_sms"]["failures"] == 0


async def sim_clear(sim: SimulatorServer) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        assert (await client.delete("/_sim/faults")).status_code in {200, 202, 204}


async def test_an_invalid_number_is_rejected_and_the_next_channel_used(
    runtime: Runtime, deliverer: Deliverer, sim: SimulatorServer
) -> None:
    message_id = _send(runtime, _person(runtime, "+15005550001"), "bad", ["sms", "email"])  # Twilio magic: 21211
    assert await deliverer.run_pass() == 1
    assert _detail(runtime, message_id)["status"] == "queued"
    assert await deliverer.run_pass() == 1
    detail = _detail(runtime, message_id)
    assert detail["status"] == "sent" and detail["provider"] == "maildir"
    assert [(a["channel"], a["status"], a["error_code"]) for a in detail["attempts"]] == [
        ("sms", "rejected", "21211"),
        ("email", "sent", None),
    ]
    assert detail["skips"][-1] == {"channel": "sms", "reason": "rejected", "at": detail["skips"][-1]["at"]}
    assert len(_mails(runtime)) == 1


async def test_reset_after_accept_is_reconciled_not_resent(
    runtime: Runtime, deliverer: Deliverer, sim: SimulatorServer, clock: FrozenClock
) -> None:
    await add_fault(sim, kind="reset", to="+12125550105")
    message_id = _send(runtime, _person(runtime, "+12125550105"), "reset", ["sms", "email"])
    assert await deliverer.run_pass() == 1
    detail = _detail(runtime, message_id)
    assert detail["status"] == "unknown"
    assert [a["status"] for a in detail["attempts"]] == ["unknown"]
    assert await deliverer.run_pass() == 0  # no blind re-send, no failover while unknown
    clock.advance(dt.timedelta(seconds=5))
    assert await deliverer.run_pass() == 1
    detail = _detail(runtime, message_id)
    [entry] = await _submitted(sim, "+12125550105")  # exactly one submission, ever
    assert entry["outcome"] == "reset"
    assert detail["status"] == "sent" and detail["provider_message_id"] == entry["sid"]
    [attempt] = detail["attempts"]
    assert attempt["status"] == "sent" and attempt["note"] == "reconciled:found"
    assert _mails(runtime) == []


async def test_consent_withdrawn_after_planning_skips_the_channel_at_send_time(
    runtime: Runtime, deliverer: Deliverer, sim: SimulatorServer
) -> None:
    person = _person(runtime, "+12125550106", sms="subscribed", email="subscribed")
    message_id = _send(runtime, person, "stop", ["sms", "email"], message_class="marketing")
    in_unit(
        runtime.engine, runtime.clock, SYSTEM, record_consent,
        person, channel="sms", purpose="all", kind="unsubscribed", explicit=True, source="STOP",
    )  # fmt: skip
    assert await deliverer.run_pass() == 1
    detail = _detail(runtime, message_id)
    assert detail["status"] == "sent" and detail["provider"] == "maildir"
    assert detail["skips"][-1]["reason"] == "no_consent:unsubscribed"
    assert await _submitted(sim, "+12125550106") == []


def _callback(client: TestClient, runtime: Runtime, reference: str, sid: str, status: str) -> int:
    # The API verifies with this installation's own simulator token (no HERALD_TWILIO_AUTH_TOKEN is set).
    token = simulator_auth_token(runtime.engine)
    query = urlencode({"hub_msg": reference})
    form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
    if status == "undelivered":
        form["ErrorCode"] = "30003"
    signature = compute_signature(f"{PUBLIC}/hooks/twilio/status?{query}", list(form.items()), token)
    response = client.post(
        f"/hooks/twilio/status?{query}",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: signature},
    )
    return response.status_code


async def test_receipts_fail_over_and_a_late_delivered_stops_the_plan(
    runtime: Runtime, deliverer: Deliverer, sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_PUBLIC_URL", PUBLIC)
    message_id = _send(runtime, _person(runtime, "+12125550107"), "late", ["sms", "email"])
    assert await deliverer.run_pass() == 1
    [attempt] = _detail(runtime, message_id)["attempts"]
    sid = attempt["provider_message_id"]
    with TestClient(create_app(runtime)) as client:
        assert _callback(client, runtime, attempt["reference"], sid, "sent") == 204
        assert _callback(client, runtime, attempt["reference"], sid, "undelivered") == 204
        detail = _detail(runtime, message_id)
        assert detail["status"] == "queued" and detail["plan_index"] == 1  # the DLR failed: next channel
        assert _callback(client, runtime, attempt["reference"], sid, "delivered") == 204  # late, out of order
        assert _callback(client, runtime, attempt["reference"], sid, "delivered") == 204  # replayed: recorded once
        bad = client.post(f"/hooks/twilio/status?hub_msg={attempt['reference']}", content=b"MessageStatus=failed")
        assert bad.status_code == 403
    detail = _detail(runtime, message_id)
    assert detail["status"] == "delivered"
    assert [r["kind"] for r in detail["receipts"]] == ["sent", "undelivered", "delivered"]
    assert await deliverer.run_pass() == 0  # the plan stopped: e-mail is never sent
    assert _mails(runtime) == []
