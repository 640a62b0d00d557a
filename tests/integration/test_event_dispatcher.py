"""The event dispatcher: committed events reach each handler once, in order, from a stored cursor; failures retry."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from herald.core.actor import SYSTEM
from herald.core.clock import FrozenClock
from herald.db.auth_tables import audit_log
from herald.db.runtime import Runtime
from herald.db.unit_of_work import UnitOfWork, unit_of_work
from herald.events.dispatcher import GAP_GRACE, Dispatcher, Event, cursor_of


class Recorder:
    """A handler that writes in its unit of work (an audit row per event) and can be told to fail."""

    def __init__(self, name: str, fail_times: int = 0) -> None:
        self.name, self.fail_times = name, fail_times
        self.seen: list[tuple[int, str]] = []

    def __call__(self, uow: UnitOfWork, event: Event) -> None:
        uow.audit(f"handled.{self.name}", target_id=event.id)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError(f"{self.name} is down")
        self.seen.append((event.id, event.kind))


def handled_rows(runtime: Runtime, name: str) -> list[int]:
    with runtime.engine.connect() as conn:
        query = sa.select(audit_log.c.target_id).where(audit_log.c.action == f"handled.{name}").order_by(audit_log.c.id)
        return [int(v) for v in conn.scalars(query)]


def build(a: Recorder, b: Recorder) -> Dispatcher:
    dispatcher = Dispatcher()
    dispatcher.subscribe("test.everything", ["subscribed", "unsubscribed", "contacts_merged", "note"], a)
    dispatcher.subscribe("test.unsubscribes", ["unsubscribed"], b)
    return dispatcher


def emit(runtime: Runtime, kind: str, **data: Any) -> int:
    with unit_of_work(runtime.engine, runtime.clock, SYSTEM) as uow:
        return uow.emit(kind, data=data)


def test_handlers_see_committed_events_once_in_order_and_resume_from_their_cursor(
    api: Any, runtime: Runtime, clock: FrozenClock
) -> None:
    # Events written by the services themselves, in the transaction of the change.
    ann = api.post("/api/contacts", json={"emails": ["ann@example.com"], "first_name": "Ann"}).json()["id"]
    bob = api.post("/api/contacts", json={"emails": ["bob@example.com"], "first_name": "Ann"}).json()["id"]
    consent = {"channel": "email", "purpose": "marketing"}
    assert api.post(f"/api/contacts/{ann}/consent", json=consent | {"kind": "unsubscribed"}).status_code == 201
    assert api.post(f"/api/contacts/{bob}/consent", json=consent | {"kind": "subscribed"}).status_code == 201
    assert api.post("/api/merges", json={"survivor_id": ann, "merged_id": bob}).status_code == 201
    assert api.post(f"/api/contacts/{ann}/consent", json=consent | {"kind": "bogus"}).status_code == 422

    a, b = Recorder("a"), Recorder("b", fail_times=2)
    dispatcher = build(a, b)
    assert dispatcher.dispatch(runtime) == 3  # b failed at once and waits; a was not held up
    assert [kind for _, kind in a.seen] == ["unsubscribed", "subscribed", "contacts_merged"]
    ids = [event_id for event_id, _ in a.seen]
    assert ids == sorted(ids)
    assert b.seen == [] and handled_rows(runtime, "b") == []  # a failed handler's writes roll back
    assert cursor_of(runtime.engine, "test.unsubscribes") == 0

    assert dispatcher.dispatch(runtime) == 0  # b is pausing; a has nothing new
    clock.advance(dt.timedelta(seconds=1))
    assert dispatcher.dispatch(runtime) == 0  # b failed again: its pause doubles
    clock.advance(dt.timedelta(seconds=2))
    assert dispatcher.dispatch(runtime) == 1
    assert b.seen == [(ids[0], "unsubscribed")]
    assert handled_rows(runtime, "a") == ids and handled_rows(runtime, "b") == [ids[0]]
    assert cursor_of(runtime.engine, "test.everything") == ids[-1]
    assert cursor_of(runtime.engine, "test.unsubscribes") == ids[-1]  # moved past what it does not handle

    # A restarted worker (a new dispatcher) starts from the stored cursors: nothing is handled twice.
    note = emit(runtime, "note", text="after the restart")
    emit(runtime, "clicked")  # nobody subscribes to it: it is skipped, not a blocker
    a2, b2 = Recorder("a"), Recorder("b")
    assert build(a2, b2).dispatch(runtime) == 1
    assert a2.seen == [(note, "note")] and b2.seen == []
    assert handled_rows(runtime, "a") == [*ids, note]


def test_a_rolled_back_event_is_never_seen_and_a_hole_is_waited_for_then_skipped(
    runtime: Runtime, clock: FrozenClock
) -> None:
    a, b = Recorder("a"), Recorder("b")
    dispatcher = build(a, b)
    first = emit(runtime, "note", n=1)
    try:
        with unit_of_work(runtime.engine, runtime.clock, SYSTEM) as uow:
            uow.emit("note", data={"n": 2})
            raise RuntimeError("the change fails")
    except RuntimeError:
        pass
    third = emit(runtime, "note", n=3)
    dispatcher.dispatch(runtime)
    if third == first + 1:  # SQLite reuses the rolled-back id: there is no hole
        assert [e for e, _ in a.seen] == [first, third]
        return
    # PostgreSQL: the hole could be a transaction still running, so the dispatcher waits before passing it.
    assert [e for e, _ in a.seen] == [first]
    clock.advance(GAP_GRACE + dt.timedelta(seconds=1))
    dispatcher.dispatch(runtime)
    assert [e for e, _ in a.seen] == [first, third]
