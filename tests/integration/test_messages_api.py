"""POST /api/messages end to end on SQLite and PostgreSQL: idempotency, commit-before-202, planner holds, worker."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from herald.channels.maildir import MaildirEmailProvider
from herald.channels.registry import ChannelRegistry
from herald.core.clock import FrozenClock
from herald.db.delivery_tables import idempotency_keys, message_attempts, messages
from herald.db.engine import create_db_engine
from herald.db.runtime import Runtime
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer
from tests.helpers import cli

LONDON = "Europe/London"  # 12:00 UTC on the fixture clock is 12:00 there: inside 08:00-20:00


def _contact(api: TestClient, **fields: Any) -> int:
    response = api.post("/api/contacts", json=fields)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _send(api: TestClient, key: str | None, **body: Any) -> Any:
    payload = {
        "class": "transactional",
        "channels": ["email"],
        "content": {"email": {"subject": "Your order", "text": "Your order has shipped."}},
    } | body
    headers = {"Idempotency-Key": key} if key else {}
    return api.post("/api/messages", json=payload, headers=headers)


def _maildir(runtime: Runtime) -> Path:
    return runtime.settings.data_dir / "maildir"


def _deliver(runtime: Runtime) -> int:
    registry = ChannelRegistry([MaildirEmailProvider(_maildir(runtime), runtime.clock)])
    deliverer = Deliverer(runtime, registry, DeliverySettings(delivery_pass_seconds=30))
    return asyncio.run(deliverer.run_pass(concurrency=4))


def _mails(runtime: Runtime) -> list[email.message.Message]:
    folder = _maildir(runtime) / "new"
    if not folder.exists():
        return []
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.iterdir())]


def _count(runtime: Runtime, table: sa.Table) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def test_same_key_twice_is_one_row_and_one_delivery(api: TestClient, runtime: Runtime) -> None:
    _contact(api, emails=["ann@example.com"], timezone=LONDON)
    first = _send(api, "order-77", email="ann@example.com")
    again = _send(api, "order-77", email="ann@example.com")
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true" and "Idempotent-Replayed" not in first.headers
    assert _count(runtime, messages) == 1

    assert _deliver(runtime) == 1
    assert _deliver(runtime) == 0
    mails = _mails(runtime)
    assert len(mails) == 1
    assert mails[0]["Subject"] == "Your order" and mails[0]["To"] == "ann@example.com"
    detail = api.get(f"/api/messages/{first.json()['id']}").json()
    assert detail["status"] == "sent"
    assert [a["status"] for a in detail["attempts"]] == ["sent"]
    assert mails[0]["Message-ID"].startswith(f"<{detail['attempts'][0]['reference']}@")


def test_same_key_different_body_is_409(api: TestClient, runtime: Runtime) -> None:
    assert _send(api, "k-1", email="bob@example.com").status_code == 202
    response = _send(api, "k-1", email="bob@example.com", channels=["email", "sms"])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"
    assert _count(runtime, messages) == 1


def test_the_idempotency_key_is_required(api: TestClient, runtime: Runtime) -> None:
    response = _send(api, None, email="bob@example.com")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"
    assert _count(runtime, messages) == 0


def test_202_means_committed(api: TestClient, runtime: Runtime) -> None:
    response = _send(api, "durable-1", email="cy@example.com")
    assert response.status_code == 202
    message_id = response.json()["id"]
    # A brand-new connection from another engine sees the row and the stored response at once.
    other = create_db_engine(runtime.settings.resolved_database_url)
    try:
        with other.connect() as conn:
            row = conn.execute(sa.select(messages).where(messages.c.id == message_id)).mappings().one()
            stored = conn.execute(sa.select(idempotency_keys)).mappings().one()
    finally:
        other.dispose()
    assert row["status"] == response.json()["status"]
    assert stored["message_id"] == message_id and stored["response"] == response.json()


def test_the_same_message_key_dedups_across_identifiers(api: TestClient, runtime: Runtime) -> None:
    person = _contact(api, emails=["dee@example.com"], phones=["+442079460000"], timezone=LONDON)
    first = _send(api, "a", email="dee@example.com", message_key="invoice-9")
    second = _send(api, "b", phone="+44 20 7946 0000", message_key="invoice-9")
    third = _send(api, "c", contact_id=person, message_key="invoice-9")
    assert first.json()["id"] == second.json()["id"] == third.json()["id"]
    assert [first.json()["duplicate"], second.json()["duplicate"], third.json()["duplicate"]] == [False, True, True]
    assert _count(runtime, messages) == 1


def test_quiet_hours_hold_until_the_next_allowed_instant(api: TestClient, runtime: Runtime, clock: FrozenClock) -> None:
    _contact(api, emails=["eve@example.com"], timezone="America/New_York")  # 07:00 there
    # Incident notices keep quiet hours by default (transactional ones are exempt: see test_first_hour.py).
    body = _send(api, "q-1", email="eve@example.com", **{"class": "incident"}).json()
    assert body["status"] == "held"
    assert body["hold_reason"] == "quiet_hours"
    opens = dt.datetime(2026, 11, 22, 13, 0, tzinfo=dt.UTC)  # 08:00 EST
    assert dt.datetime.fromisoformat(body["available_at"]) == opens
    detail = api.get(f"/api/messages/{body['id']}").json()
    assert detail["zone_source"] == "contact" and detail["zones"] == ["America/New_York"]
    assert detail["quiet_zone"] == "America/New_York (contact)"
    assert detail["quiet_window"] == "08:00-20:00 local, every day"

    assert _deliver(runtime) == 0
    clock.set(opens - dt.timedelta(seconds=1))
    assert _deliver(runtime) == 0 and _mails(runtime) == []
    clock.set(opens)
    assert _deliver(runtime) == 1
    assert len(_mails(runtime)) == 1
    detail = api.get(f"/api/messages/{body['id']}").json()
    assert detail["status"] == "sent" and detail["hold_reason"] is None


def test_marketing_without_consent_is_never_sent(api: TestClient, runtime: Runtime) -> None:
    _contact(api, emails=["fay@example.com"], timezone=LONDON)
    body = _send(api, "m-1", email="fay@example.com", **{"class": "marketing"}).json()
    assert body["status"] == "held" and body["hold_reason"] == "no_consent"
    assert body["skips"] == [{"channel": "email", "reason": "no_consent:unknown"}]
    assert _deliver(runtime) == 0 and _mails(runtime) == []


def test_a_missing_template_variable_holds_and_never_sends(api: TestClient, runtime: Runtime) -> None:
    created = api.post(
        "/api/templates",
        json={
            "id": "shipped",
            "parts": {"email.subject": "Order {{ order_id }}", "email.text": "Hello {{ contact.first_name }}."},
            "variables": {"contact.first_name": "there"},
        },
    )
    assert created.status_code == 201 and created.json()["version"] == 1
    _contact(api, emails=["gus@example.com"], timezone=LONDON)
    held = _send(api, "t-1", email="gus@example.com", content=None, template_id="shipped").json()
    assert held["status"] == "held" and held["hold_reason"] == "missing_variable:order_id"
    assert _deliver(runtime) == 0 and _mails(runtime) == []
    assert _count(runtime, message_attempts) == 0

    ok = _send(api, "t-2", email="gus@example.com", content=None, template_id="shipped", variables={"order_id": "A7"})
    assert ok.json()["status"] == "queued"
    assert _deliver(runtime) == 1
    [mail] = _mails(runtime)
    assert mail["Subject"] == "Order A7" and "Hello there." in mail.get_payload(decode=True).decode()
    detail = api.get(f"/api/messages/{ok.json()['id']}").json()
    assert detail["template_id"] == "shipped" and detail["template_version"] == 1
    versions = api.get("/api/templates/shipped").json()["versions"]
    assert [v["version"] for v in versions] == [1]


def test_an_unsubscribed_channel_is_skipped_and_the_next_one_used(api: TestClient, runtime: Runtime) -> None:
    _contact(
        api,
        emails=["hal@example.com"],
        phones=["+442079460001"],
        timezone=LONDON,
        consent={"sms": "unsubscribed", "email": "subscribed"},
    )
    body = _send(
        api,
        "u-1",
        email="hal@example.com",
        channels=["sms", "email"],
        content={"sms": {"body": "News!"}, "email": {"subject": "News", "text": "Our news."}},
        **{"class": "marketing"},
    ).json()
    assert body["status"] == "queued"
    assert body["channels"] == ["email"]
    assert body["skips"] == [{"channel": "sms", "reason": "no_consent:unsubscribed"}]
    assert _deliver(runtime) == 1
    assert [m["Subject"] for m in _mails(runtime)] == ["News"]


def test_consent_is_checked_again_at_send_time(api: TestClient, runtime: Runtime) -> None:
    person = _contact(api, emails=["ida@example.com"], timezone=LONDON, consent={"email": "subscribed"})
    body = _send(api, "s-1", email="ida@example.com", **{"class": "marketing"}).json()
    assert body["status"] == "queued"
    response = api.post(f"/api/contacts/{person}/consent", json={"channel": "email", "kind": "unsubscribed"})
    assert response.status_code in {200, 201, 204}, response.text
    assert _deliver(runtime) == 1
    assert _mails(runtime) == []
    detail = api.get(f"/api/messages/{body['id']}").json()
    assert detail["status"] == "held" and detail["hold_reason"] == "no_consent"
    assert detail["attempts"] == []
    assert detail["skips"][-1]["reason"] == "no_consent:unsubscribed"


def test_providers_lists_breakers(api: TestClient) -> None:
    assert api.get("/api/providers").json() == {"providers": []}


def test_the_status_hook_refuses_unsigned_callbacks(api: TestClient) -> None:
    response = api.post(
        "/hooks/twilio/status?hub_msg=hm1-1",
        content=b"MessageSid=SM1&MessageStatus=delivered",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": ""},
    )
    assert response.status_code == 403


@pytest.mark.usefixtures("cli_env")
def test_cli_send_is_the_same_send(runtime: Runtime) -> None:
    args = ["messages", "send", "--to", "jo@example.com", "--channel", "email", "--subject", "Hi Jo"]
    args += ["--text", "A note for you.", "--idempotency-key", "cli-1"]
    first = cli(*args)
    assert first.exit_code == 0, first.output
    again = cli(*args)
    assert json.loads(again.stdout) == json.loads(first.stdout)
    message_id = json.loads(first.stdout)["id"]
    shown = cli("messages", "show", str(message_id))
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["addresses"] == {"email": "jo@example.com"}
    assert _count(runtime, messages) == 1


def test_old_idempotency_records_are_pruned_and_a_late_replay_still_sends_once(
    api: TestClient, runtime: Runtime
) -> None:
    import datetime as dt

    from herald.db.delivery_tables import idempotency_keys
    from herald.delivery.housekeeping import prune_idempotency_keys

    assert isinstance(runtime.clock, FrozenClock)
    first = _send(api, "late-1", email="cy@example.com")
    runtime.clock.advance(dt.timedelta(hours=23))
    assert prune_idempotency_keys(runtime) == 0  # kept for at least 24 hours
    runtime.clock.advance(dt.timedelta(hours=2))
    assert prune_idempotency_keys(runtime) == 1
    assert _count(runtime, idempotency_keys) == 0
    # The replay is no longer answered from the record, but the ledger still holds one message.
    late = _send(api, "late-1", email="cy@example.com")
    assert late.status_code == 202 and late.json()["id"] == first.json()["id"]
    assert _count(runtime, messages) == 1
