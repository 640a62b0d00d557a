"""Feed committed events to subscribed handlers, in order, once each, resuming from a stored cursor per handler."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from herald.core.actor import SYSTEM
from herald.db.engine import dialect_insert, read_connection
from herald.db.event_log import Origin
from herald.db.event_tables import event_cursors, events
from herald.db.runtime import Runtime
from herald.db.unit_of_work import UnitOfWork, unit_of_work

BATCH = 500
# On PostgreSQL ids are taken at insert but become visible at commit, so a hole in the ids is either a
# transaction still running (wait for it) or one that rolled back (skip it once it is surely gone).
GAP_GRACE = dt.timedelta(seconds=60)
RETRY_FIRST = dt.timedelta(seconds=1)
RETRY_CAP = dt.timedelta(minutes=5)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    id: int
    kind: str
    person_id: int | None
    channel: str | None
    message_id: int | None
    origin: Origin | None
    occurred_at: dt.datetime
    data: dict[str, Any]


# A handler runs inside its own unit of work; the cursor moves in that same transaction, so its writes and
# "this event is handled" commit together (or not at all, and the event comes again).
Handler = Callable[[UnitOfWork, Event], None]


@dataclass(frozen=True)
class Subscription:
    name: str  # the cursor's key: keep it stable, or the handler starts again from the first event
    kinds: frozenset[str]
    handle: Handler


@dataclass
class _Retry:
    failures: int = 0
    at: dt.datetime | None = None


@dataclass
class Dispatcher:
    """Built once per worker; `subscribe()` during start-up, then `dispatch()` every pass."""

    subscriptions: list[Subscription] = field(default_factory=list)
    _gaps: dict[int, dt.datetime] = field(default_factory=dict)
    _retry: dict[str, _Retry] = field(default_factory=dict)

    def subscribe(self, name: str, kinds: Iterable[str], handle: Handler) -> None:
        if any(s.name == name for s in self.subscriptions):
            raise ValueError(f"event handler {name!r} is subscribed twice")
        self.subscriptions.append(Subscription(name, frozenset(kinds), handle))

    def dispatch(self, runtime: Runtime, *, batch: int = BATCH) -> int:
        """Hand every committed event after each handler's cursor to it; return how many calls were made."""
        now = runtime.clock.now()
        ready = [s for s in self.subscriptions if self._ready(s.name, now)]
        if not ready:
            return 0
        cursors = _load_cursors(runtime.engine, [s.name for s in ready])
        low = min(cursors.values())
        settled = self._settled(_read_after(runtime.engine, low, batch), low, now)
        if not settled:
            return 0
        calls = 0
        for sub in ready:
            calls += self._feed(runtime, sub, cursors[sub.name], settled)
        return calls

    def _feed(self, runtime: Runtime, sub: Subscription, cursor: int, settled: Sequence[Event]) -> int:
        calls = 0
        for event in settled:
            if event.id <= cursor or event.kind not in sub.kinds:
                continue
            try:
                with unit_of_work(runtime.engine, runtime.clock, SYSTEM) as uow:
                    sub.handle(uow, event)
                    _store_cursor(uow.conn, sub.name, event.id, uow.now)
            except Exception:
                # Only this handler waits (with growing pauses); the others go on, and this one gets the
                # same event again next time: an event is never skipped because a handler failed.
                self._failed(sub.name, runtime.clock.now(), event)
                return calls
            calls += 1
            cursor = event.id
        self._retry.pop(sub.name, None)
        if settled[-1].id > cursor:  # nothing of its kinds in the rest: move past it in one write
            with runtime.engine.begin() as conn:
                _store_cursor(conn, sub.name, settled[-1].id, runtime.clock.now())
        return calls

    def _ready(self, name: str, now: dt.datetime) -> bool:
        retry = self._retry.get(name)
        return retry is None or retry.at is None or retry.at <= now

    def _failed(self, name: str, now: dt.datetime, event: Event) -> None:
        retry = self._retry.setdefault(name, _Retry())
        retry.failures += 1
        pause = min(RETRY_CAP, RETRY_FIRST * 2 ** (retry.failures - 1))
        retry.at = now + pause
        log.exception("event handler %s failed on event %d (%s); retrying in %s", name, event.id, event.kind, pause)

    def _settled(self, rows: Sequence[Event], after: int, now: dt.datetime) -> list[Event]:
        """The events up to the first hole in the ids that may still be filled by a running transaction."""
        out: list[Event] = []
        expected = after + 1
        for event in rows:
            if event.id != expected:
                first_seen = self._gaps.setdefault(expected, now)
                if now - first_seen < GAP_GRACE:
                    break
                self._gaps.pop(expected, None)  # rolled back long ago: nothing will ever fill it
            out.append(event)
            expected = event.id + 1
        return out


def _read_after(engine: sa.Engine, after: int, limit: int) -> list[Event]:
    with read_connection(engine) as conn:
        rows = conn.execute(sa.select(events).where(events.c.id > after).order_by(events.c.id).limit(limit))
        return [
            Event(
                id=r.id,
                kind=r.kind,
                person_id=r.person_id,
                channel=r.channel,
                message_id=r.message_id,
                origin=Origin(r.origin_type, r.origin_id) if r.origin_type else None,
                occurred_at=r.occurred_at,
                data=dict(r.data or {}),
            )
            for r in rows
        ]


def _load_cursors(engine: sa.Engine, names: list[str]) -> dict[str, int]:
    with read_connection(engine) as conn:
        rows = conn.execute(
            sa.select(event_cursors.c.handler, event_cursors.c.last_event_id).where(event_cursors.c.handler.in_(names))
        )
        stored = {handler: int(last) for handler, last in rows}
    return {name: stored.get(name, 0) for name in names}


def _store_cursor(conn: sa.Connection, name: str, last_event_id: int, now: dt.datetime) -> None:
    statement = dialect_insert(conn, event_cursors).values(handler=name, last_event_id=last_event_id, updated_at=now)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["handler"], set_={"last_event_id": last_event_id, "updated_at": now}
        )
    )


def cursor_of(engine: sa.Engine, name: str) -> int:
    """Where a handler stands (0 before its first event)."""
    return _load_cursors(engine, [name])[name]
