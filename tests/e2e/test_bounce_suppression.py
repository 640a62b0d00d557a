"""Hard bounces suppress the address: a 550 at RCPT from the real postfix, a Twilio invalid number."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from herald.channels.registry import ChannelRegistry
from herald.channels.simulator import SimulatorConfig, SimulatorServer
from herald.channels.smtp import SmtpConfig, SmtpEmailProvider, SmtpSecurity
from herald.channels.twilio import build_providers
from herald.core.clock import FrozenClock
from herald.db.consent_tables import consent_events
from herald.db.event_tables import events
from herald.db.runtime import Runtime
from herald.delivery.reasons import describe_reason
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer
from tests.e2e.twilio_support import TOKEN, settings_for
from tests.helpers import postfix_address
from tests.integration.test_messages_pages import sign_in

SETTINGS = DeliverySettings(delivery_max_retries=0, soft_bounce_limit=3)


def _send(api: TestClient, **body: Any) -> dict[str, Any]:
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    response = api.post("/api/messages", json={"class": "transactional", **body}, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def _detail(api: TestClient, message_id: int) -> dict[str, Any]:
    response = api.get(f"/api/messages/{message_id}")
    assert response.status_code == 200
    return dict(response.json())


def _consent_rows(runtime: Runtime, person_id: int) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        query = sa.select(consent_events).where(consent_events.c.person_id == person_id)
        return [dict(r) for r in conn.execute(query.order_by(consent_events.c.id)).mappings()]


def _event_kinds(runtime: Runtime, message_id: int) -> list[str]:
    with runtime.engine.connect() as conn:
        query = sa.select(events.c.kind).where(events.c.message_id == message_id).order_by(events.c.id)
        return list(conn.execute(query).scalars())


@pytest.fixture
async def smtp_deliverer(runtime: Runtime) -> AsyncIterator[Deliverer]:
    host, port = postfix_address()
    config = SmtpConfig(host=host, port=port, security=SmtpSecurity.PLAIN, default_sender="herald@localhost")
    provider = SmtpEmailProvider(config, runtime.clock)
    yield Deliverer(runtime, ChannelRegistry([provider]), SETTINGS)
    await provider.aclose()


async def test_a_550_at_rcpt_suppresses_the_address_and_a_later_message_makes_no_attempt(
    runtime: Runtime, api: TestClient, smtp_deliverer: Deliverer, clock: FrozenClock
) -> None:
    address = f"nobody-{uuid.uuid4().hex[:8]}@localhost.localdomain"  # postfix: 550 5.1.1 user unknown
    content = {"email": {"subject": "Your receipt", "text": "Thanks."}}
    first = _send(api, email=address, channels=["email"], content=content)
    assert await smtp_deliverer.run_pass() == 1
    detail = _detail(api, first["id"])
    [attempt] = detail["attempts"]
    assert attempt["status"] == "rejected" and attempt["error_code"] == "550"
    assert detail["status"] == "failed"
    person_id = detail["person_id"]
    [suppression] = _consent_rows(runtime, person_id)
    assert (suppression["channel"], suppression["purpose"], suppression["kind"], suppression["source"]) == (
        "email",
        "all",
        "bounced",
        "bounce",
    )
    assert "550 5.1.1" in suppression["note"] and address in suppression["note"]  # the SMTP reply as evidence
    assert _event_kinds(runtime, first["id"]) == ["bounced", "failed"]

    second = _send(api, email=address, channels=["email"], content=content)
    assert _detail(api, second["id"])["person_id"] == person_id
    assert await smtp_deliverer.run_pass() == 0  # nothing to claim: no SMTP session at all
    later = _detail(api, second["id"])
    assert later["attempts"] == []
    assert later["status"] == "held"
    assert [(s["channel"], s["reason"]) for s in later["skips"]] == [("email", "suppressed:hard_bounce")]
    assert "bounced permanently" in describe_reason(later["skips"][0]["reason"])
    page = sign_in(runtime, clock, "marketer").get(f"/messages/{second['id']}")
    assert page.status_code == 200
    assert "bounced permanently" in page.text  # the message page says why, in words


@pytest.fixture
async def sim(clock: FrozenClock) -> AsyncIterator[SimulatorServer]:
    async with SimulatorServer(SimulatorConfig(TOKEN, callback_delay_seconds=0.01), clock=clock) as server:
        yield server


async def test_a_twilio_invalid_number_suppresses_sms_and_a_later_message_skips_it(
    runtime: Runtime, api: TestClient, sim: SimulatorServer
) -> None:
    client = httpx.AsyncClient(timeout=httpx.Timeout(5.0))
    twilio = build_providers(settings_for(sim, "http://127.0.0.1:9"), client=client, clock=runtime.clock)
    deliverer = Deliverer(runtime, ChannelRegistry(twilio), SETTINGS)
    try:
        content = {"sms": {"body": "Your code is 1234"}}
        first = _send(api, phone="+15005550001", channels=["sms"], content=content)  # Twilio magic number: 21211
        assert await deliverer.run_pass() == 1
        detail = _detail(api, first["id"])
        assert [(a["status"], a["error_code"]) for a in detail["attempts"]] == [("rejected", "21211")]
        [row] = _consent_rows(runtime, detail["person_id"])
        assert (row["channel"], row["kind"], row["source"], row["purpose"]) == ("sms", "bounced", "bounce", "all")
        assert "21211" in row["note"]
        second = _send(api, phone="+15005550001", channels=["sms"], content=content)
        assert await deliverer.run_pass() == 0
        later = _detail(api, second["id"])
        assert later["attempts"] == [] and later["skips"][0]["reason"] == "suppressed:hard_bounce"
    finally:
        await client.aclose()
