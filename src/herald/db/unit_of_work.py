"""One unit of work: a transaction, the clock, who acts, audit rows in the same transaction, after-commit hooks."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from herald.core.actor import Actor
from herald.core.clock import Clock
from herald.db.auth_tables import audit_log
from herald.db.event_log import Origin, append_event

log = logging.getLogger(__name__)


@dataclass
class UnitOfWork:
    """Built by an entry point (web view, API route, CLI command, worker job) and handed to a service.

    Services write through `conn`, read the time from `now` (one instant for the whole change), record
    what they did with `audit()`, report events with `emit()` and defer side effects (sending, starting
    threads) with `after_commit()`: a rolled-back change leaves no audit row, no event and runs no hook.
    """

    conn: sa.Connection
    clock: Clock
    actor: Actor
    now: dt.datetime
    _after: list[Callable[[], None]] = field(default_factory=list)

    def audit(
        self,
        action: str,
        *,
        target: str | None = None,
        target_id: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an audit row in this transaction, stamped with this unit's actor and instant."""
        entry_id = self.conn.scalar(
            audit_log.insert()
            .values(
                at=self.now,
                action=action,
                actor_id=self.actor.id,
                actor=self.actor.label,
                actor_kind=self.actor.kind,
                target_id=target_id,
                target=target,
                ip=self.actor.ip,
                details=dict(details or {}),
            )
            .returning(audit_log.c.id)
        )
        assert entry_id is not None
        return int(entry_id)

    def emit(
        self,
        kind: str,
        *,
        person_id: int | None = None,
        channel: str | None = None,
        message_id: int | None = None,
        origin: Origin | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an event to the log in this transaction; handlers see it only once it is committed."""
        return append_event(
            self.conn,
            kind,
            at=self.now,
            person_id=person_id,
            channel=channel,
            message_id=message_id,
            origin=origin,
            data=data,
        )

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` once the transaction has committed; never if it rolls back."""
        self._after.append(hook)


@contextmanager
def unit_of_work(engine: sa.Engine, clock: Clock, actor: Actor) -> Iterator[UnitOfWork]:
    """Begin a write transaction (BEGIN IMMEDIATE on SQLite), commit it, then run the after-commit hooks."""
    with engine.begin() as conn:
        uow = UnitOfWork(conn=conn, clock=clock, actor=actor, now=clock.now())
        yield uow
    for hook in uow._after:
        try:
            hook()
        except Exception:
            # The change is committed and must be reported as done; a failed follow-up is logged, and
            # anything that must happen for sure belongs in a durable job, not in a hook.
            log.exception("after-commit hook %r failed", hook)
