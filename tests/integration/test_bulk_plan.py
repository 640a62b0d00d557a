"""The bulk planning path (delivery.bulk_plan) on SQLite and PostgreSQL: recipients, recent sends, enqueue_many."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from herald.consent.ledger import event_row, record_events
from herald.contacts.merge import merge_people
from herald.contacts.resolve import Resolver
from herald.contacts.service import ContactInput, to_incoming
from herald.core.clock import FrozenClock
from herald.db.delivery_tables import messages
from herald.db.runtime import Runtime
from herald.delivery import ledger
from herald.delivery.bulk_plan import enqueue_many, load_recipients, plan_rules, recent_sends
from herald.delivery.settings import DeliverySettings


def _people(engine: sa.Engine, clock: FrozenClock, records: list[ContactInput]) -> list[int]:
    with engine.begin() as conn:
        resolver = Resolver(conn, clock.now(), secret="s", source="test", actor="test")
        return [o.person_id for o in resolver.resolve([to_incoming(r, "US") for r in records])]


def _new(person_id: int, key: str, now: dt.datetime, **overrides: object) -> ledger.NewMessage:
    values: dict[str, object] = {
        "person_id": person_id,
        "message_key": key,
        "message_class": "marketing",
        "status": "queued",
        "channels": ["email"],
        "addresses": {"email": f"p{person_id}@example.com"},
        "content": {},
        "available_at": now,
        "template_id": "welcome",
        "template_version": 1,
        "variables": {"n": person_id},
        "campaign_id": 7,
    } | overrides
    return ledger.NewMessage(**values)  # type: ignore[arg-type]


def test_load_recipients_reads_fields_addresses_and_consent_in_chunks(engine: sa.Engine, clock: FrozenClock) -> None:
    many = [ContactInput(emails=[f"u{i}@example.com"], fields={"first_name": f"U{i}"}) for i in range(1900)]
    ids = _people(engine, clock, many)
    ann, bob = _people(
        engine,
        clock,
        [
            ContactInput(
                emails=["ann@example.com", "ann2@example.com"],
                phones=["+14155550100"],
                fields={"first_name": "Ann", "timezone": "Europe/London", "attributes": {"plan": "pro"}},
            ),
            ContactInput(emails=["bob@example.com"], fields={"first_name": "Bob"}),
        ],
    )
    with engine.begin() as conn:
        record_events(conn, [event_row(ann, "email", "marketing", "unsubscribed", source="test", now=clock.now())])
        merge_people(conn, ann, bob, actor="test", now=clock.now(), reason="test")

    with engine.connect() as conn:
        found = load_recipients(conn, [*ids, ann, bob, 999_999, ann])

    assert set(found) == {*ids, ann}  # merged and unknown people are left out; a repeat is one entry
    assert found[ids[1234]].fields["first_name"] == "U1234" and found[ids[1234]].emails == ("u1234@example.com",)
    recipient = found[ann]
    assert recipient.emails[:2] == ("ann@example.com", "ann2@example.com") and "bob@example.com" in recipient.emails
    assert recipient.phones == ("+14155550100",)
    assert recipient.fields["timezone"] == "Europe/London" and recipient.fields["attributes"] == {"plan": "pro"}
    assert [(e.channel, e.purpose, e.kind) for e in recipient.consent] == [("email", "marketing", "unsubscribed")]


def test_enqueue_many_inserts_in_order_and_reports_existing_rows(engine: sa.Engine, clock: FrozenClock) -> None:
    now = clock.now()
    ids = _people(engine, clock, [ContactInput(emails=[f"e{i}@example.com"]) for i in range(1200)])
    with engine.begin() as conn:
        before = ledger.enqueue(conn, _new(ids[5], "c7", now), now)
    rows = [_new(pid, "c7", now) for pid in ids]
    rows.insert(10, _new(ids[3], "c7", now))  # the same person and key twice in one call: one row
    rows.append(_new(ids[0], "other", now, status="held", hold_reason="quiet_hours", releasable=True))

    with engine.begin() as conn:
        result = enqueue_many(conn, rows, now)
    with engine.begin() as conn:
        again = enqueue_many(conn, rows, now)

    assert len(result) == len(rows)
    assert [r.created for r in result].count(False) == 2
    assert result[5] == ledger.Enqueued(before.id, created=False)
    assert result[10] == ledger.Enqueued(result[3].id, created=False) and result[3].created
    assert [r.id for r in again] == [r.id for r in result] and not any(r.created for r in again)
    with engine.connect() as conn:
        stored = {
            (r.person_id, r.message_key): r
            for r in conn.execute(
                sa.select(messages.c.id, messages.c.person_id, messages.c.message_key, messages.c.status,
                          messages.c.status_rank, messages.c.variables, messages.c.campaign_id,
                          messages.c.hold_reason, messages.c.releasable, messages.c.available_at)
            )
        }  # fmt: skip
    assert len(stored) == 1201
    for row, enqueued in zip(rows, result, strict=True):
        assert stored[(row.person_id, row.message_key)].id == enqueued.id
    held = stored[(ids[0], "other")]
    assert (held.status, held.status_rank, held.hold_reason, held.releasable) == ("held", 10, "quiet_hours", True)
    queued = stored[(ids[42], "c7")]
    assert queued.variables == {"n": ids[42]} and queued.campaign_id == 7 and queued.available_at == now


def test_recent_sends_counts_live_rows_across_campaigns(engine: sa.Engine, clock: FrozenClock) -> None:
    now = clock.now()
    ann, bob = _people(engine, clock, [ContactInput(emails=["ann@example.com"]), ContactInput(emails=["b@x.org"])])
    day = dt.timedelta(days=1)
    rows = [
        _new(ann, "old", now - 10 * day),
        _new(ann, "yesterday", now - day, campaign_id=8),
        _new(ann, "planned", now + day, channels=["sms", "email"]),
        _new(ann, "api", now, campaign_id=None, message_class="transactional"),
        _new(ann, "no-consent", now, status="held", hold_reason="no_consent"),
        _new(ann, "quiet", now + dt.timedelta(hours=3), status="held", hold_reason="quiet_hours", releasable=True),
    ]
    with engine.begin() as conn:
        enqueue_many(conn, rows, now)
        conn.execute(sa.update(messages).where(messages.c.message_key == "api").values(status="failed"))

    with engine.connect() as conn:
        everything = recent_sends(conn, [ann, bob], now)
        recent = recent_sends(conn, [ann], now, window=2 * day)

    assert everything[bob] == []
    assert sorted(r.at for r in everything[ann]) == [now - 10 * day, now - day, now + dt.timedelta(hours=3), now + day]
    assert sorted((r.channel, r.message_class, r.at) for r in recent[ann]) == [
        ("email", "marketing", now - day),
        ("email", "marketing", now + dt.timedelta(hours=3)),
        ("sms", "marketing", now + day),
    ]


def test_plan_rules_come_from_the_delivery_settings(runtime: Runtime) -> None:
    delivery = DeliverySettings(delivery_caps="email:marketing:2:86400:hold", default_timezone="Europe/Paris")
    rules = plan_rules(runtime, delivery)
    assert rules.account_zone == "Europe/Paris"
    assert [(c.channel, c.message_class, c.max_count, c.window) for c in rules.caps] == [
        ("email", "marketing", 2, dt.timedelta(days=1))
    ]
    assert rules.quiet_hours.default_country == "US"
