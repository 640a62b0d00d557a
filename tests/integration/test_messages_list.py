"""The ledger's read side on SQLite and PostgreSQL: filters, paging and totals through the query module,
GET /api/messages, `herald messages show`, and the hold and skip reasons they report."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.channels.maildir import MaildirEmailProvider
from herald.channels.registry import ChannelRegistry
from herald.core.errors import InvalidInputError, NotFoundError
from herald.db.runtime import Runtime
from herald.delivery import queries
from herald.delivery.queries import MessageFilter
from herald.delivery.reasons import REASON_KINDS, describe_reason
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer
from tests.helpers import cli

LONDON = "Europe/London"  # 12:00 UTC on the fixture clock: inside 08:00-20:00
AUCKLAND = "Pacific/Auckland"  # 01:00 there: quiet hours


def _contact(api: TestClient, **fields: Any) -> int:
    response = api.post("/api/contacts", json=fields)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _send(api: TestClient, key: str, **body: Any) -> dict[str, Any]:
    payload = {
        "class": "transactional",
        "channels": ["email"],
        "content": {"email": {"subject": f"Order {key}", "text": "It shipped."}},
    } | body
    response = api.post("/api/messages", json=payload, headers={"Idempotency-Key": key})
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()
    return result


def _deliver(runtime: Runtime) -> int:
    registry = ChannelRegistry([MaildirEmailProvider(runtime.settings.data_dir / "maildir", runtime.clock)])
    deliverer = Deliverer(runtime, registry, DeliverySettings(delivery_pass_seconds=30))
    return asyncio.run(deliverer.run_pass(concurrency=2))


def seed(api: TestClient, runtime: Runtime) -> dict[str, int]:
    """One message in each interesting state; returns their ids by name."""
    people = {
        "ann": _contact(api, emails=["ann@example.com"], timezone=LONDON),
        "bob": _contact(api, emails=["bob@example.com"], timezone=LONDON),
        "cy": _contact(api, emails=["cy@example.com"], timezone=LONDON),
        "dee": _contact(api, emails=["dee@example.com"], timezone=AUCKLAND),
        "eve": _contact(api, emails=["eve@example.com"], phones=["+442079460000"], timezone=LONDON),
    }
    ids = {
        "sent": _send(api, "sent", contact_id=people["ann"])["id"],
        # Marketing without any consent on record: every channel skipped, so the row is held.
        "no_consent": _send(api, "no-consent", contact_id=people["bob"], **{"class": "marketing"})["id"],
        "missing": _send(
            api,
            "missing",
            contact_id=people["cy"],
            content={"email": {"subject": "Hi {{ contact.first_name }}", "text": "Hello"}},
        )["id"],
        # Transactional sends ignore quiet hours by default; an incident notice still waits for morning.
        "quiet": _send(api, "quiet", contact_id=people["dee"], **{"class": "incident"})["id"],
        # No SMS provider is configured here: the worker skips SMS and sends the e-mail.
        "sms_skipped": _send(
            api,
            "sms-skipped",
            contact_id=people["eve"],
            channels=["sms", "email"],
            content={"sms": {"body": "Shipped"}, "email": {"subject": "Shipped", "text": "It shipped."}},
        )["id"],
    }
    assert _deliver(runtime) == 2  # ann's and eve's e-mails
    return ids | {f"person_{name}": pid for name, pid in people.items()}


def _ids(runtime: Runtime, **filters: Any) -> list[int]:
    page = queries.list_messages(runtime.engine, MessageFilter(**filters), limit=100)
    assert page.total == len(page.messages)
    return [row["id"] for row in page.messages]


def test_filters_by_status_channel_class_reason_and_person(api: TestClient, runtime: Runtime) -> None:
    ids = seed(api, runtime)
    everything = _ids(runtime)
    assert everything == sorted(everything, reverse=True)  # newest first
    assert set(everything) == {ids[k] for k in ("sent", "no_consent", "missing", "quiet", "sms_skipped")}

    assert _ids(runtime, status="sent") == [ids["sms_skipped"], ids["sent"]]
    assert _ids(runtime, status="held") == [ids["quiet"], ids["missing"], ids["no_consent"]]
    assert _ids(runtime, status="queued") == []
    assert _ids(runtime, channel="sms") == [ids["sms_skipped"]]  # a channel anywhere in the plan
    assert len(_ids(runtime, channel="email")) == 5
    assert _ids(runtime, message_class="marketing") == [ids["no_consent"]]
    assert _ids(runtime, reason="quiet_hours") == [ids["quiet"]]
    assert _ids(runtime, reason="missing_variable") == [ids["missing"]]  # matches missing_variable:<path>
    assert _ids(runtime, reason="no_consent") == [ids["no_consent"]]
    assert _ids(runtime, reason="no_provider") == [ids["sms_skipped"]]  # a skip on a message that was sent
    assert _ids(runtime, reason="no") == []  # whole kinds only: "no" is not a prefix of "no_consent"
    assert _ids(runtime, status="held", message_class="transactional") == [ids["missing"]]
    assert _ids(runtime, message_class="incident") == [ids["quiet"]]
    assert _ids(runtime, person_id=ids["person_dee"]) == [ids["quiet"]]
    assert _ids(runtime, person_id=ids["person_dee"], status="sent") == []

    listed = {row["id"]: row for row in queries.list_messages(runtime.engine, MessageFilter()).messages}
    assert listed[ids["sent"]]["summary"] == "Order sent"
    assert listed[ids["sms_skipped"]]["channel"] == "email"  # the plan moved past SMS
    assert listed[ids["sms_skipped"]]["address"] == "eve@example.com"
    assert listed[ids["missing"]]["hold_reason"] == "missing_variable:contact.first_name"
    assert listed[ids["quiet"]]["releasable"] is True
    assert "content" not in listed[ids["sent"]] and "lease_token" not in listed[ids["sent"]]


def test_paging_returns_the_total_and_each_row_once(api: TestClient, runtime: Runtime) -> None:
    person = _contact(api, emails=["pat@example.com"], timezone=LONDON)
    made = [_send(api, f"page-{i}", contact_id=person)["id"] for i in range(7)]
    pages = [queries.list_messages(runtime.engine, MessageFilter(), limit=3, offset=o) for o in (0, 3, 6)]
    assert [p.total for p in pages] == [7, 7, 7]
    assert [len(p.messages) for p in pages] == [3, 3, 1]
    assert [row["id"] for p in pages for row in p.messages] == sorted(made, reverse=True)
    beyond = queries.list_messages(runtime.engine, MessageFilter(), limit=3, offset=9)
    assert beyond.total == 7 and beyond.messages == []
    mine = queries.messages_for_person(runtime.engine, person, limit=5)
    assert mine.total == 7 and len(mine.messages) == 5


def test_bad_filters_are_refused_with_the_field(runtime: Runtime) -> None:
    for filters, field in (
        (MessageFilter(status="lost"), "status"),
        (MessageFilter(channel="pigeon"), "channel"),
        (MessageFilter(message_class="spam"), "class"),
        (MessageFilter(reason="%"), "reason"),
        (MessageFilter(reason="quiet_hours:%"), "reason"),
    ):
        with pytest.raises(InvalidInputError) as caught:
            queries.list_messages(runtime.engine, filters)
        assert caught.value.fields["field"] == field
    with pytest.raises(InvalidInputError):
        queries.list_messages(runtime.engine, MessageFilter(), limit=0)
    with pytest.raises(NotFoundError):
        queries.message_detail(runtime.engine, 999)


def test_detail_has_attempts_content_on_request_and_a_history(api: TestClient, runtime: Runtime) -> None:
    ids = seed(api, runtime)
    detail = queries.message_detail(runtime.engine, ids["sms_skipped"])
    assert "content" not in detail
    assert [(a["channel"], a["provider"], a["status"]) for a in detail["attempts"]] == [("email", "maildir", "sent")]
    with_content = queries.message_detail(runtime.engine, ids["sms_skipped"], include_content=True)
    assert with_content["content"]["email"]["subject"] == "Shipped"
    kinds = [item.kind for item in queries.message_history(with_content)]
    assert kinds[0] == "accepted" and "skipped" in kinds and "attempt" in kinds and kinds[-1] == "sent"
    skipped = next(item for item in queries.message_history(with_content) if item.kind == "skipped")
    assert skipped.text == "sms skipped: No provider is configured for this channel."
    assert skipped.at == runtime.clock.now()


def test_api_lists_with_filters_and_refuses_bad_ones(api: TestClient, runtime: Runtime) -> None:
    ids = seed(api, runtime)
    listed = api.get("/api/messages", params={"status": "held", "limit": 1})
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 3 and body["limit"] == 1 and body["offset"] == 0
    assert [m["id"] for m in body["messages"]] == [ids["quiet"]]
    assert body["messages"][0]["hold_reason"] == "quiet_hours"
    second = api.get("/api/messages", params={"status": "held", "limit": 1, "offset": 1})
    assert [m["id"] for m in second.json()["messages"]] == [ids["missing"]]
    by_class = api.get("/api/messages", params={"status": "held", "class": "transactional"}).json()
    assert [m["id"] for m in by_class["messages"]] == [ids["missing"]]
    by_person = api.get("/api/messages", params={"person": ids["person_bob"], "reason": "no_consent"}).json()
    assert [m["id"] for m in by_person["messages"]] == [ids["no_consent"]]
    assert api.get("/api/messages", params={"channel": "sms"}).json()["total"] == 1

    for params in ({"status": "lost"}, {"reason": "a%"}, {"person": "x"}, {"limit": 501}):
        refused = api.get("/api/messages", params=params)
        assert refused.status_code == 422, params
        assert refused.json()["error"]["code"] == "invalid_input"
    unauthenticated = TestClient(api.app).get("/api/messages")
    assert unauthenticated.status_code == 401


def test_cli_show_uses_the_same_detail(api: TestClient, runtime: Runtime, cli_env: dict[str, str]) -> None:
    ids = seed(api, runtime)
    shown = cli("messages", "show", str(ids["sent"]))
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.stdout)  # stderr carries the database line
    assert detail["status"] == "sent" and [a["status"] for a in detail["attempts"]] == ["sent"]
    assert detail == json.loads(json.dumps(queries.message_detail(runtime.engine, ids["sent"]), default=str))


def test_every_reason_kind_has_words() -> None:
    for kind in REASON_KINDS:
        assert describe_reason(kind) != kind, kind
    assert describe_reason("quiet_hours:no_common_window").startswith("Quiet hours: no time")
    assert describe_reason("missing_variable:contact.first_name").endswith("contact.first_name.")
    assert describe_reason("no_consent:unsubscribed").endswith("they unsubscribed.")
    assert describe_reason("something_new:x") == "something_new:x"  # unknown codes are shown, not hidden
    assert describe_reason(None) == ""
