"""POST /api/messages/batch on SQLite and PostgreSQL: per-item idempotency, replays, conflicts, 207, holds."""

from __future__ import annotations

import asyncio
import email
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from herald.api.app import create_app
from herald.channels.maildir import MaildirEmailProvider
from herald.channels.registry import ChannelRegistry
from herald.db.delivery_tables import idempotency_keys, messages
from herald.db.runtime import Runtime
from herald.delivery import batch
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer

LONDON = "Europe/London"  # 12:00 UTC on the fixture clock: inside 08:00-20:00 there


def _item(key: str | None, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "class": "transactional",
        "channels": ["email"],
        "content": {"email": {"subject": "Your order", "text": "Your order has shipped."}},
    } | fields
    if key is not None:
        item["idempotency_key"] = key
    return item


def _batch(api: TestClient, *items: Any) -> Any:
    return api.post("/api/messages/batch", json={"messages": list(items)})


def _count(runtime: Runtime, table: sa.Table) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def _contact(api: TestClient, **fields: Any) -> int:
    response = api.post("/api/contacts", json=fields)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _deliver(runtime: Runtime) -> list[email.message.Message]:
    maildir = runtime.settings.data_dir / "maildir"
    registry = ChannelRegistry([MaildirEmailProvider(maildir, runtime.clock)])
    asyncio.run(Deliverer(runtime, registry, DeliverySettings(delivery_pass_seconds=30)).run_pass(concurrency=4))
    folder: Path = maildir / "new"
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.iterdir())] if folder.exists() else []


def test_a_batch_is_accepted_in_order_and_replays_item_by_item(api: TestClient, runtime: Runtime) -> None:
    items = [_item(f"k{i}", email=f"p{i}@example.com") for i in range(30)]
    first = _batch(api, *items)
    assert first.status_code == 202, first.text
    results = first.json()["results"]
    assert [(r["index"], r["idempotency_key"], r["status"]) for r in results] == [(i, f"k{i}", 202) for i in range(30)]
    assert all(r["message"]["status"] == "queued" and not r["duplicate"] and not r["replayed"] for r in results)
    assert len({r["id"] for r in results}) == 30 and _count(runtime, messages) == 30

    # The same batch again (a client retrying after a lost answer), plus one new item: nothing twice.
    again = _batch(api, *items, _item("k30", email="p30@example.com"))
    assert again.status_code == 202
    replays = again.json()["results"]
    assert [r["id"] for r in replays[:30]] == [r["id"] for r in results]
    assert [r["message"] for r in replays[:30]] == [r["message"] for r in results]
    assert all(r["replayed"] for r in replays[:30]) and not replays[30]["replayed"]
    assert _count(runtime, messages) == 31 and _count(runtime, idempotency_keys) == 31

    mails = _deliver(runtime)
    assert sorted(m["To"] for m in mails) == sorted(f"p{i}@example.com" for i in range(31))


def test_bad_items_fail_alone_with_207(api: TestClient, runtime: Runtime) -> None:
    response = _batch(
        api,
        _item("ok-1", email="ann@example.com"),
        _item(None, email="bob@example.com"),  # no key
        _item("bad-email", email="not an address"),
        _item("no-channels", email="cy@example.com", channels=[]),
        _item("nobody", contact_id=987654),
        _item("no-template", email="dee@example.com", content=None, template_id="missing"),
        "not an object",
        _item("nul", email="eve@example.com", content={"email": {"subject": "a\x00b", "text": "x"}}),
        _item("ok-2", email="fay@example.com"),
    )
    assert response.status_code == 207, response.text
    results = response.json()["results"]
    statuses = [(r["idempotency_key"], r["status"], r.get("error", {}).get("code")) for r in results]
    assert statuses == [
        ("ok-1", 202, None),
        (None, 400, "idempotency_key_required"),
        ("bad-email", 422, "invalid_input"),
        ("no-channels", 422, "invalid_input"),
        ("nobody", 404, "not_found"),
        ("no-template", 404, "not_found"),
        (None, 422, "invalid_input"),
        ("nul", 422, "invalid_input"),
        ("ok-2", 202, None),
    ]
    assert all("id" not in r for r in results[1:8])
    assert _count(runtime, messages) == 2 and _count(runtime, idempotency_keys) == 2

    # A failed item stored nothing: fixed and sent again under the same key, it is accepted.
    fixed = _batch(api, _item("bad-email", email="gil@example.com"))
    assert fixed.status_code == 202 and fixed.json()["results"][0]["replayed"] is False


def test_the_same_key_with_another_item_is_a_conflict(api: TestClient, runtime: Runtime) -> None:
    first = _batch(api, _item("order-1", email="ann@example.com"))
    assert first.status_code == 202
    response = _batch(
        api,
        _item("order-1", email="bob@example.com"),  # stored before with another recipient
        _item("order-2", email="cy@example.com"),
        _item("order-2", email="cy@example.com"),  # the same item twice in one batch: a replay of the first
        _item("order-3", email="dee@example.com"),
        _item("order-3", email="eve@example.com"),  # the same key, another item, in one batch
    )
    assert response.status_code == 207
    results = response.json()["results"]
    assert [(r["status"], r.get("error", {}).get("code")) for r in results] == [
        (409, "idempotency_conflict"),
        (202, None),
        (202, None),
        (202, None),
        (409, "idempotency_conflict"),
    ]
    assert results[2]["id"] == results[1]["id"] and results[2]["replayed"] and not results[1]["replayed"]
    assert _count(runtime, messages) == 3


def test_the_same_person_twice_is_two_rows_unless_the_message_key_is_shared(api: TestClient, runtime: Runtime) -> None:
    person = _contact(api, emails=["ann@example.com"], phones=["+442079460000"], timezone=LONDON)
    response = _batch(
        api,
        _item("a", email="ann@example.com"),
        _item("b", email="ann@example.com"),
        _item("c", email="ann@example.com", message_key="invoice-9"),
        _item("d", phone="+44 20 7946 0000", message_key="invoice-9"),
        _item("e", contact_id=person, message_key="invoice-9"),
        _item("f", email="new@example.com"),
        _item("g", email="NEW@example.com"),  # a new address twice: one new person, two rows
    )
    assert response.status_code == 202
    results = response.json()["results"]
    assert len({results[0]["id"], results[1]["id"], results[2]["id"]}) == 3
    assert results[2]["id"] == results[3]["id"] == results[4]["id"]
    assert [r["duplicate"] for r in results[2:5]] == [False, True, True]
    assert _count(runtime, messages) == 5
    with runtime.engine.connect() as conn:
        owners = dict(conn.execute(sa.select(messages.c.id, messages.c.person_id)).all())
    assert {owners[r["id"]] for r in results[:5]} == {person}
    assert owners[results[5]["id"]] == owners[results[6]["id"]] != person


def test_inline_and_template_items_with_holds_per_item(api: TestClient, runtime: Runtime) -> None:
    created = api.post(
        "/api/templates",
        json={"id": "shipped", "parts": {"email.subject": "Order {{ order_id }}", "email.text": "Hi {{ first_name }}"}},
    )
    assert created.status_code == 201
    _contact(api, emails=["ann@example.com"], first_name="Ann", timezone=LONDON)
    _contact(api, emails=["eve@example.com"], timezone="America/New_York")  # 07:00 there
    _contact(api, emails=["fay@example.com"], timezone=LONDON, consent={"email": "unsubscribed"})
    template = {"content": None, "template_id": "shipped"}
    response = _batch(
        api,
        _item("t1", email="ann@example.com", variables={"order_id": "A7"}, **template),
        _item("t2", email="ann@example.com", **template),  # order_id missing
        _item("i1", email="eve@example.com", **{"class": "incident"}),  # quiet hours in New York
        _item("i2", email="fay@example.com", **{"class": "marketing"}),  # unsubscribed
        _item("i3", email="ann@example.com", content={"email": {"subject": "Hi {{ first_name }}", "text": "x"}}),
    )
    assert response.status_code == 202  # held is accepted: the row records the decision
    bodies = [r["message"] for r in response.json()["results"]]
    assert [(b["status"], b["hold_reason"]) for b in bodies] == [
        ("queued", None),
        ("held", "missing_variable:order_id"),
        ("held", "quiet_hours"),
        ("held", "no_consent"),
        ("queued", None),
    ]
    assert bodies[2]["available_at"].startswith("2026-11-22T13:00:00")
    assert bodies[3]["skips"] == [{"channel": "email", "reason": "no_consent:unsubscribed"}]
    mails = _deliver(runtime)
    assert sorted(m["Subject"] for m in mails) == ["Hi Ann", "Order A7"]


def test_bad_envelopes_get_the_error_shape(api: TestClient, runtime: Runtime, settings: Any) -> None:
    too_many = api.post("/api/messages/batch", json={"messages": [_item(f"k{i}") for i in range(1001)]})
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "invalid_input"
    for body in ({"messages": []}, {"messages": {"a": 1}}, [], {"other": 1}):
        response = api.post("/api/messages/batch", json=body)
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_input", body
    assert _count(runtime, messages) == 0

    limited = settings.model_copy(update={"max_body_bytes": 4096})
    small = Runtime(settings=limited, engine=runtime.engine, clock=runtime.clock)
    headers = dict(api.headers)
    with TestClient(create_app(small), headers=headers) as client:
        big = client.post("/api/messages/batch", json={"messages": [_item(f"k{i}") for i in range(100)]})
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"


def test_a_crash_before_commit_leaves_no_item_half_written(
    api: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [batch.BatchItem(f"k{i}", {"i": i}, _request(f"p{i}@example.com")) for i in range(5)]

    def crash(*_args: Any, **_kwargs: Any) -> set[str]:
        raise RuntimeError("killed between the rows and the keys")

    monkeypatch.setattr(batch, "store_keys", crash)
    with pytest.raises(RuntimeError):
        batch.submit_batch(runtime, "key:1", items)
    assert _count(runtime, messages) == 0 and _count(runtime, idempotency_keys) == 0

    monkeypatch.undo()
    result = batch.submit_batch(runtime, "key:1", items)
    assert result.status_code == 202 and _count(runtime, messages) == _count(runtime, idempotency_keys) == 5


def _request(address: str) -> Any:
    from herald.delivery.service import SendRequest

    return SendRequest(
        message_class="transactional",
        channels=["email"],
        email=address,
        content={"email": {"subject": "s", "text": "t"}},
    )


def test_cli_send_batch_round_trip(runtime: Runtime, cli_env: dict[str, str], tmp_path: Path) -> None:
    import json

    from tests.helpers import cli

    lines = [
        json.dumps(_item("line-1", email="ann@example.com")),
        json.dumps(_item("line-2", email="bob@example.com", **{"class": "marketing"})),
        "",
        "{not json",
        json.dumps(_item("line-5", email="cy@example.com", channels=["pigeon"])),
        json.dumps(_item("line-6", email="dee@example.com")),
    ]
    file = tmp_path / "messages.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    first = cli("messages", "send-batch", str(file))
    assert first.exit_code == 1
    assert first.stdout.strip().splitlines()[-1] == "accepted 3 (replayed 0), failed 2"
    assert "line 4: 422 invalid_input: not JSON" in first.stderr
    assert "line 5: 422 invalid_input" in first.stderr and "channels" in first.stderr
    assert "line 1" not in first.stderr and "line 6" not in first.stderr
    assert _count(runtime, messages) == 3

    again = cli("messages", "send-batch", str(file))
    assert again.stdout.strip().splitlines()[-1] == "accepted 3 (replayed 3), failed 2"
    assert _count(runtime, messages) == 3
    with runtime.engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(messages.c.message_key, messages.c.hold_reason)).all())
    assert statuses == {"idem:cli:line-1": None, "idem:cli:line-2": "no_consent", "idem:cli:line-6": None}


def test_concurrent_batches_to_the_same_new_addresses(runtime: Runtime) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def send(worker: int) -> list[int]:
        items = [batch.BatchItem(f"w{worker}-{i}", {"i": i}, _request(f"new{i}@example.com")) for i in range(200)]
        result = batch.submit_batch(runtime, "key:1", items)
        return [r.status for r in result.results]

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(send, range(4)))
    assert all(s == [202] * 200 for s in statuses)
    assert _count(runtime, messages) == 800
    with runtime.engine.connect() as conn:
        people = conn.scalar(sa.select(sa.func.count(sa.distinct(messages.c.person_id))))
    assert people == 200


def test_a_key_sent_alone_replays_in_a_batch(api: TestClient, runtime: Runtime) -> None:
    item = _item("shared", email="ann@example.com")
    body = {k: v for k, v in item.items() if k != "idempotency_key"}
    alone = api.post("/api/messages", json=body, headers={"Idempotency-Key": "shared"})
    assert alone.status_code == 202
    [result] = _batch(api, item).json()["results"]
    assert result["status"] == 202 and result["replayed"] and result["message"] == alone.json()
    assert _count(runtime, messages) == 1


def test_a_frequency_cap_counts_earlier_items_of_the_same_batch(runtime: Runtime) -> None:
    caps = DeliverySettings(delivery_caps="email:transactional:2:86400:hold")
    items = [batch.BatchItem(f"cap-{i}", {"i": i}, _request("ann@example.com")) for i in range(3)]
    result = batch.submit_batch(runtime, "key:1", items, caps)
    bodies = [r.body for r in result.results]
    assert [(b["status"], b["hold_reason"]) for b in bodies if b] == [
        ("queued", None),
        ("queued", None),
        ("held", "capped_hold"),
    ]


def test_concurrent_single_sends_to_one_new_address(runtime: Runtime) -> None:
    # The same race as above on the single path: each request's key differs, the new contact is shared.
    from concurrent.futures import ThreadPoolExecutor

    from herald.delivery import service

    def send(i: int) -> int:
        request = _request("fresh@example.com")
        return service.submit_message(runtime, "key:1", f"s{i}", {"i": i}, request).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(send, range(16))) == [202] * 16
    with runtime.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count(sa.distinct(messages.c.person_id)))) == 1
    assert _count(runtime, messages) == 16
