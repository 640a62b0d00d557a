"""The ledger on real SQLite and PostgreSQL: one row per (person, key), leases, fencing, monotonic states."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import sqlalchemy as sa

from herald.core.clock import FrozenClock
from herald.db.contacts_tables import people
from herald.db.delivery_tables import message_attempts, messages
from herald.db.engine import create_db_engine
from herald.db.runtime import Runtime
from herald.delivery import ledger

LEASE = dt.timedelta(seconds=30)


def _person(engine: sa.Engine, now: dt.datetime) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                people.insert()
                .values(attributes={}, tags=[], locked_fields=[], created_at=now, updated_at=now)
                .returning(people.c.id)
            ).scalar_one()
        )


def _new(person_id: int, key: str, now: dt.datetime, status: str = "queued") -> ledger.NewMessage:
    return ledger.NewMessage(
        person_id=person_id,
        message_key=key,
        message_class="transactional",
        status=status,
        channels=["email"],
        addresses={"email": "ann@example.com"},
        content={"email": {"subject": "Hi", "text": "Hello Ann"}},
        available_at=now,
        zones=["Europe/London"],
        zone_source="contact",
    )


def _enqueue_many(engine: sa.Engine, now: dt.datetime, count: int) -> list[int]:
    person = _person(engine, now)
    with engine.begin() as conn:
        return [ledger.enqueue(conn, _new(person, f"k{i}", now), now).id for i in range(count)]


def test_one_row_per_person_and_key(engine: sa.Engine, clock: FrozenClock) -> None:
    now = clock.now()
    person = _person(engine, now)
    with engine.begin() as conn:
        first = ledger.enqueue(conn, _new(person, "order-1", now), now)
        again = ledger.enqueue(conn, _new(person, "order-1", now), now)
        other = ledger.enqueue(conn, _new(person, "order-2", now), now)
    assert first.created and not again.created and other.created
    assert again.id == first.id != other.id
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(messages)) == 2
    # The database itself refuses a second copy, whatever code path tries.
    with engine.connect() as conn:
        row = ledger.get_message(conn, first.id)
        assert row is not None
        duplicate = {k: v for k, v in row.items() if k != "id"}
        try:
            conn.execute(messages.insert().values(duplicate))
            conn.commit()
            raised = False
        except sa.exc.IntegrityError:
            raised = True
    assert raised


def test_a_rolled_back_enqueue_leaves_nothing(engine: sa.Engine, clock: FrozenClock) -> None:
    now = clock.now()
    person = _person(engine, now)
    try:
        with engine.begin() as conn:
            ledger.enqueue(conn, _new(person, "gone", now), now)
            raise RuntimeError("the caller's transaction failed")
    except RuntimeError:
        pass
    with engine.connect() as conn:
        assert ledger.anything_due(conn, now) is False
        assert conn.scalar(sa.select(sa.func.count()).select_from(messages)) == 0


def test_claim_takes_due_rows_only_and_increments_the_token(engine: sa.Engine, clock: FrozenClock) -> None:
    now = clock.now()
    ids = _enqueue_many(engine, now, 3)
    with engine.begin() as conn:
        conn.execute(sa.update(messages).where(messages.c.id == ids[2]).values(available_at=now + LEASE))
        claimed = ledger.claim(conn, now=now, worker="a", lease=LEASE, limit=10)
    assert sorted(c.id for c in claimed) == ids[:2]
    assert {c.token for c in claimed} == {1}
    assert all(c.row["status"] == "sending" and c.row["lease_until"] == now + LEASE for c in claimed)
    with engine.begin() as conn:
        assert ledger.claim(conn, now=now, worker="b", lease=LEASE, limit=10) == []


def test_an_expired_lease_is_taken_over_and_the_stale_completion_changes_nothing(
    engine: sa.Engine, clock: FrozenClock
) -> None:
    now = clock.now()
    [message_id] = _enqueue_many(engine, now, 1)
    with engine.begin() as conn:
        [first] = ledger.claim(conn, now=now, worker="a", lease=LEASE, limit=1)
        attempt = ledger.start_attempt(conn, first, channel="email", provider="smtp", now=now, extra={})
    # Worker A stalls past its lease; worker B claims the row and adopts A's attempt.
    later = now + LEASE + dt.timedelta(seconds=1)
    with engine.begin() as conn:
        [second] = ledger.claim(conn, now=later, worker="b", lease=LEASE, limit=1)
        assert ledger.take_over_attempt(conn, second, attempt["id"], later, resubmit=True)
    assert second.id == message_id and second.token == first.token + 1
    assert second.attempt is not None and second.attempt["reference"] == attempt["reference"]

    stale = ledger.Completion(
        message_id, first.token, {"status": "failed", "last_error": "A's view"}, attempt["id"], {"status": "rejected"}
    )
    with engine.begin() as conn:
        assert ledger.complete(conn, [stale], later) == 0
        row = ledger.get_message(conn, message_id)
        att = conn.execute(sa.select(message_attempts).where(message_attempts.c.id == attempt["id"])).mappings().one()
    assert row is not None and row["status"] == "sending" and row["worker"] == "b" and row["last_error"] is None
    assert att["status"] == "submitting" and att["resubmissions"] == 1

    fresh = ledger.Completion(message_id, second.token, {"status": "sent"}, attempt["id"], {"status": "sent"})
    with engine.begin() as conn:
        assert ledger.complete(conn, [fresh], later) == 1
        row = ledger.get_message(conn, message_id)
        att = conn.execute(sa.select(message_attempts).where(message_attempts.c.id == attempt["id"])).mappings().one()
    assert row is not None and row["status"] == "sent" and row["lease_until"] is None
    assert att["status"] == "sent"


def test_receipts_only_move_rows_forward(engine: sa.Engine, clock: FrozenClock) -> None:
    now = clock.now()
    [message_id] = _enqueue_many(engine, now, 1)
    with engine.begin() as conn:
        [claimed] = ledger.claim(conn, now=now, worker="a", lease=LEASE, limit=1)
        # A fast "delivered" receipt overtakes the worker's own completion.
        assert ledger.advance_message(conn, message_id, "delivered", {"delivered_at": now}, now=now)
        assert ledger.complete(conn, [ledger.Completion(message_id, claimed.token, {"status": "sent"})], now) == 0
        # A late "sent" (or any lower state) never moves it back.
        assert not ledger.advance_message(conn, message_id, "sent", {}, now=now)
        assert not ledger.advance_message(conn, message_id, "failed", {}, now=now)
        row = ledger.get_message(conn, message_id)
    assert row is not None and row["status"] == "delivered"


def _claim_all(url: str, clock: FrozenClock, name: str, seen: list[int], errors: list[BaseException]) -> None:
    engine = create_db_engine(url)
    try:
        while True:
            with engine.begin() as conn:
                got = ledger.claim(conn, now=clock.now(), worker=name, lease=LEASE, limit=7)
                done = [ledger.Completion(c.id, c.token, {"status": "sent", "sent_at": clock.now()}) for c in got]
                ledger.complete(conn, done, clock.now())
            if not got:
                return
            seen.extend(c.id for c in got)
    except BaseException as exc:
        errors.append(exc)
    finally:
        engine.dispose()


def test_concurrent_claimers_never_share_a_row(runtime: Runtime, clock: FrozenClock) -> None:
    now = clock.now()
    ids = _enqueue_many(runtime.engine, now, 300)
    url = runtime.settings.resolved_database_url
    seen: list[int] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_claim_all, args=(url, clock, f"w{i}", seen, errors)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counts = Counter(seen)
    assert sorted(counts) == sorted(ids)  # none lost
    assert max(counts.values()) == 1  # none claimed twice
    with runtime.engine.connect() as conn:
        statuses = Counter(conn.execute(sa.select(messages.c.status)).scalars())
    assert statuses == {"sent": 300}
