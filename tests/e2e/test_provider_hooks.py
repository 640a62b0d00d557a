"""POST /hooks/{provider}: the registry's adapter verifies and parses; outcomes reach the ledger and event log."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from herald.channels.registry import ChannelRegistry
from herald.channels.simulator import SimulatorConfig, SimulatorServer
from herald.channels.twilio import build_providers
from herald.channels.twilio_signature import SIGNATURE_HEADER, compute_signature
from herald.core.clock import FrozenClock
from herald.db.consent_tables import consent_events
from herald.db.event_tables import events
from herald.db.runtime import Runtime
from herald.delivery.bootstrap import simulator_auth_token
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer
from tests.e2e.twilio_support import TOKEN, settings_for

PUBLIC = "http://herald.test"


@pytest.fixture
async def deliverer(runtime: Runtime, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deliverer]:
    monkeypatch.setenv("HERALD_PUBLIC_URL", PUBLIC)
    async with SimulatorServer(SimulatorConfig(TOKEN, callback_delay_seconds=0.01), clock=clock) as sim:
        client = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
        twilio = build_providers(settings_for(sim, "http://127.0.0.1:9"), client=client, clock=runtime.clock)
        yield Deliverer(runtime, ChannelRegistry(twilio), DeliverySettings(public_url=PUBLIC))
        await client.aclose()


def _send(api: TestClient, phone: str) -> int:
    body = {"class": "transactional", "phone": phone, "channels": ["sms"], "content": {"sms": {"body": "Hello"}}}
    response = api.post("/api/messages", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def _hook(api: TestClient, runtime: Runtime, provider: str, attempt: dict[str, Any], status: str, **extra: str) -> int:
    # Signed like Twilio does: the public URL it was given, and the form; this installation's token.
    query = urlencode({"hub_msg": attempt["reference"]})
    form = {"MessageSid": attempt["provider_message_id"], "MessageStatus": status, **extra}
    token = simulator_auth_token(runtime.engine)
    signature = compute_signature(f"{PUBLIC}/hooks/{provider}?{query}", list(form.items()), token)
    response = api.post(
        f"/hooks/{provider}?{query}",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: signature},
    )
    return response.status_code


def _kinds(runtime: Runtime, message_id: int) -> list[str]:
    with runtime.engine.connect() as conn:
        query = sa.select(events.c.kind).where(events.c.message_id == message_id).order_by(events.c.id)
        return list(conn.execute(query).scalars())


async def test_a_delivered_callback_through_the_provider_route(
    runtime: Runtime, api: TestClient, deliverer: Deliverer
) -> None:
    message_id = _send(api, "+12125550181")
    assert await deliverer.run_pass() == 1
    [attempt] = api.get(f"/api/messages/{message_id}").json()["attempts"]
    assert _hook(api, runtime, "twilio_sms", attempt, "delivered") == 204
    assert _hook(api, runtime, "twilio_sms", attempt, "delivered") == 204  # replayed: applied once
    detail = api.get(f"/api/messages/{message_id}").json()
    assert detail["status"] == "delivered"
    assert _kinds(runtime, message_id) == ["sent", "delivered"]


async def test_an_undelivered_unknown_handset_suppresses_the_number(
    runtime: Runtime, api: TestClient, deliverer: Deliverer
) -> None:
    message_id = _send(api, "+12125550182")
    assert await deliverer.run_pass() == 1
    [attempt] = api.get(f"/api/messages/{message_id}").json()["attempts"]
    assert _hook(api, runtime, "twilio_sms", attempt, "undelivered", ErrorCode="30005") == 204
    detail = api.get(f"/api/messages/{message_id}").json()
    assert detail["status"] == "failed"
    assert _kinds(runtime, message_id) == ["sent", "bounced"]
    with runtime.engine.connect() as conn:
        [row] = conn.execute(sa.select(consent_events).where(consent_events.c.person_id == detail["person_id"]))
    assert (row.channel, row.kind, row.source, row.purpose) == ("sms", "bounced", "bounce", "all")
    assert "30005" in row.note
    later = _send(api, "+12125550182")
    assert await deliverer.run_pass() == 0
    assert api.get(f"/api/messages/{later}").json()["skips"][0]["reason"] == "suppressed:hard_bounce"


async def test_soft_bounces_suppress_after_the_configured_count(
    runtime: Runtime, api: TestClient, deliverer: Deliverer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_SOFT_BOUNCE_LIMIT", "2")
    person_id = None
    for round_ in range(2):
        message_id = _send(api, "+12125550183")
        assert await deliverer.run_pass() == 1
        detail = api.get(f"/api/messages/{message_id}").json()
        person_id = detail["person_id"]
        assert detail["status"] == "sent", (round_, detail)  # not suppressed before the count is reached
        [attempt] = detail["attempts"]
        # 30003: the handset is unreachable for now: a soft bounce.
        assert _hook(api, runtime, "twilio_sms", attempt, "undelivered", ErrorCode="30003") == 204
    with runtime.engine.connect() as conn:
        rows = list(conn.execute(sa.select(consent_events).where(consent_events.c.person_id == person_id)))
    assert [(r.kind, r.source, r.purpose) for r in rows] == [("suppressed", "bounce", "all")]
    assert "2 soft bounces in a row" in rows[0].note
    later = _send(api, "+12125550183")
    assert await deliverer.run_pass() == 0
    assert api.get(f"/api/messages/{later}").json()["skips"][0]["reason"] == "suppressed:soft_bounces"


def test_unknown_providers_and_unsigned_callbacks_are_refused(api: TestClient) -> None:
    missing = api.post("/hooks/nosuchprovider", content=b"x=1")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_provider"
    unsigned = api.post("/hooks/twilio_sms?hub_msg=x", content=b"MessageStatus=delivered&MessageSid=SM1")
    assert unsigned.status_code == 403 and unsigned.json()["error"]["code"] == "bad_signature"
    no_callbacks = api.post("/hooks/maildir", content=b"x=1")  # e-mail has no callback channel
    assert no_callbacks.status_code == 403
