"""The append-only audit log: who did what to whom, when and from where.

Any slice records an event with `record_audit(conn_or_engine, clock, "export.created", actor=…)`.
Nothing in Herald updates or deletes audit rows; this module only inserts and reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.core.actor import CLI, SYSTEM, Actor

__all__ = ["ACTOR_KINDS", "CLI", "SYSTEM", "Actor", "AuditEntry", "list_audit", "record_audit"]
from herald.core.clock import Clock
from herald.db.auth_tables import audit_log

PAGE_SIZE = 50
# How the audit page names each kind of actor (the id after it is an operator's or an API key's).
ACTOR_KINDS = {"operator": "operator", "api_key": "API key", "cli": "CLI", "system": "system"}


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    action: str
    actor: str | None
    actor_id: int | None
    actor_kind: str | None
    target: str | None
    ip: str | None
    details: dict[str, Any]


def record_audit(
    db: sa.Engine | sa.Connection,
    clock: Clock,
    action: str,
    *,
    actor: Actor | None = None,
    target: str | None = None,
    target_id: int | None = None,
    ip: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Append one event; pass a Connection to make it part of the caller's transaction."""
    values = {
        "at": clock.now(),
        "action": action,
        "actor_id": actor.id if actor else None,
        "actor": actor.label if actor else None,
        "actor_kind": actor.kind if actor else None,
        "target_id": target_id,
        "target": target,
        "ip": ip if ip is not None else (actor.ip if actor else None),
        "details": dict(details or {}),
    }
    statement = audit_log.insert().values(**values).returning(audit_log.c.id)
    if isinstance(db, sa.Engine):
        with db.begin() as conn:
            entry_id = conn.scalar(statement)
    else:
        entry_id = db.scalar(statement)
    assert entry_id is not None
    return int(entry_id)


def list_audit(
    db: sa.Engine, *, page: int = 1, page_size: int = PAGE_SIZE, action: str | None = None
) -> tuple[list[AuditEntry], bool]:
    """One page of entries, newest first, and whether an older page exists."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc())
    if action:
        query = query.where(audit_log.c.action == action)
    query = query.offset((max(page, 1) - 1) * page_size).limit(page_size + 1)
    with db.connect() as conn:
        rows = conn.execute(query).mappings().all()
    entries = [
        AuditEntry(
            id=row["id"],
            at=row["at"],
            action=row["action"],
            actor=row["actor"],
            actor_id=row["actor_id"],
            actor_kind=row["actor_kind"],
            target=row["target"],
            ip=row["ip"],
            details=dict(row["details"] or {}),
        )
        for row in rows[:page_size]
    ]
    return entries, len(rows) > page_size
