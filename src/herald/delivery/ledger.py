"""The send ledger: one row per (person, key); claim due rows with a lease and fencing token; complete fenced."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from herald.db.delivery_tables import message_attempts, messages
from herald.db.engine import dialect_insert

# The order a row's life moves in. Worker moves are fenced by lease_token; provider callbacks only ever
# move a row to a higher rank, so a late or out-of-order receipt cannot move it backwards.
STATUS_RANK: dict[str, int] = {
    "held": 10,
    "queued": 10,
    "retry_wait": 10,
    "sending": 20,
    "unknown": 25,
    "sent": 30,
    "failed": 40,
    "delivered": 50,
}
CLAIMABLE = ("queued", "retry_wait", "unknown")

ATTEMPT_RANK: dict[str, int] = {
    "submitting": 10,
    "unknown": 15,
    "retry": 20,  # a transient failure: nothing was taken
    "sent": 30,
    "failed": 40,
    "rejected": 40,
    "delivered": 50,
}


def rank(status: str) -> int:
    return STATUS_RANK[status]


@dataclass(frozen=True, slots=True)
class NewMessage:
    person_id: int
    message_key: str
    message_class: str
    status: str  # queued | held
    channels: Sequence[str]
    addresses: Mapping[str, str]
    content: Mapping[str, Mapping[str, Any]]
    available_at: dt.datetime
    zones: Sequence[str] = ()
    zone_source: str = "unknown"
    hold_reason: str | None = None
    releasable: bool = False
    skips: Sequence[Mapping[str, Any]] = ()
    template_id: str | None = None
    template_version: int | None = None
    quiet_zone: str | None = None
    quiet_window: str | None = None


@dataclass(frozen=True, slots=True)
class Enqueued:
    id: int
    created: bool  # False: the (person, key) row already existed and is returned instead


@dataclass(frozen=True, slots=True)
class Claim:
    """One claimed row: everything the worker needs, plus the fencing token its completion must carry."""

    id: int
    token: int
    row: Mapping[str, Any]
    attempt: Mapping[str, Any] | None = None  # the row's current attempt, if any


@dataclass(frozen=True, slots=True)
class Completion:
    """A fenced update of one message row, and optionally of the attempt the claim made."""

    message_id: int
    token: int
    values: Mapping[str, Any]  # must include "status"
    attempt_id: int | None = None
    attempt_values: Mapping[str, Any] = field(default_factory=dict)


def enqueue(conn: sa.Connection, message: NewMessage, now: dt.datetime) -> Enqueued:
    """Insert the ledger row in the caller's transaction; an existing (person, key) row wins and is returned."""
    values = {
        "person_id": message.person_id,
        "message_key": message.message_key,
        "message_class": message.message_class,
        "status": message.status,
        "status_rank": rank(message.status),
        "hold_reason": message.hold_reason,
        "releasable": message.releasable,
        "channels": list(message.channels),
        "plan_index": 0,
        "skips": [dict(s) for s in message.skips],
        "addresses": dict(message.addresses),
        "content": {k: dict(v) for k, v in message.content.items()},
        "template_id": message.template_id,
        "template_version": message.template_version,
        "zones": list(message.zones),
        "zone_source": message.zone_source,
        "quiet_zone": message.quiet_zone,
        "quiet_window": message.quiet_window,
        "available_at": message.available_at,
        "created_at": now,
        "updated_at": now,
    }
    statement = (
        dialect_insert(conn, messages)
        .values(values)
        .on_conflict_do_nothing(index_elements=["person_id", "message_key"])
        .returning(messages.c.id)
    )
    new_id = conn.execute(statement).scalar()
    if new_id is not None:
        return Enqueued(int(new_id), created=True)
    existing = conn.execute(
        sa.select(messages.c.id).where(
            messages.c.person_id == message.person_id, messages.c.message_key == message.message_key
        )
    ).scalar_one()
    return Enqueued(int(existing), created=False)


def _due(now: dt.datetime) -> sa.ColumnElement[bool]:
    c = messages.c
    return sa.or_(
        sa.and_(c.status.in_(CLAIMABLE), c.available_at <= now),
        sa.and_(c.status == "held", c.releasable.is_(True), c.available_at <= now),
        sa.and_(c.status == "sending", c.lease_until < now),
    )


def anything_due(conn: sa.Connection, now: dt.datetime) -> bool:
    return conn.execute(sa.select(messages.c.id).where(_due(now)).limit(1)).first() is not None


def claim(conn: sa.Connection, *, now: dt.datetime, worker: str, lease: dt.timedelta, limit: int) -> list[Claim]:
    """Take up to `limit` due rows: UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING.

    On SQLite the FOR UPDATE is dropped and the BEGIN IMMEDIATE the engine issues serialises claimers.
    The token increases on every claim, so whoever held the row before can no longer complete it.
    """
    c = messages.c
    due = (
        sa.select(c.id)
        .where(_due(now))
        .order_by(c.available_at, c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        sa.update(messages)
        .where(c.id.in_(due))
        .values(
            status="sending",
            status_rank=rank("sending"),
            lease_until=now + lease,
            lease_token=c.lease_token + 1,
            worker=worker,
            claims=c.claims + 1,
            updated_at=now,
        )
        .returning(*messages.c)
    )
    rows = [dict(r) for r in conn.execute(statement).mappings()]
    attempts = _attempts_by_id(conn, [r["current_attempt_id"] for r in rows if r["current_attempt_id"]])
    rows.sort(key=lambda r: (r["available_at"], r["id"]))
    return [
        Claim(id=r["id"], token=r["lease_token"], row=r, attempt=attempts.get(r["current_attempt_id"] or 0))
        for r in rows
    ]


def _attempts_by_id(conn: sa.Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    query = sa.select(message_attempts).where(message_attempts.c.id.in_(list(ids)))
    return {r["id"]: dict(r) for r in conn.execute(query).mappings()}


def start_attempt(
    conn: sa.Connection, claimed: Claim, *, channel: str, provider: str, now: dt.datetime, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """Record a new attempt as `submitting` before anything leaves (R1.9); the claim's token is copied on it."""
    number = (
        conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(message_attempts.c.number), 0)).where(
                message_attempts.c.message_id == claimed.id
            )
        ).scalar_one()
        + 1
    )
    values = {
        "message_id": claimed.id,
        "number": number,
        # Globally unique (RFC 5322 §3.6.4: it becomes the Message-ID): row ids repeat across installations
        # and databases sharing a relay, and the relay's log is searched for exactly this value.
        "reference": f"hm{claimed.id}-{number}-{secrets.token_hex(4)}",
        "channel": channel,
        "provider": provider,
        "status": "submitting",
        "status_rank": ATTEMPT_RANK["submitting"],
        "lease_token": claimed.token,
        "started_at": now,
        "updated_at": now,
    }
    attempt_id = conn.execute(message_attempts.insert().values(values).returning(message_attempts.c.id)).scalar_one()
    fence(conn, claimed.id, claimed.token, {"current_attempt_id": attempt_id, **extra}, now=now)
    return {"id": attempt_id, **values}


def take_over_attempt(
    conn: sa.Connection, claimed: Claim, attempt_id: int, now: dt.datetime, *, resubmit: bool
) -> bool:
    """Adopt an attempt a crashed (or stale) worker left without an outcome: its token moves to this claim,
    so the old worker's late report about it matches nothing."""
    values: dict[str, Any] = {"lease_token": claimed.token, "updated_at": now}
    if resubmit:
        values["resubmissions"] = message_attempts.c.resubmissions + 1
    result = conn.execute(
        sa.update(message_attempts)
        .where(message_attempts.c.id == attempt_id, message_attempts.c.status.in_(("submitting", "unknown")))
        .values(values)
    )
    return result.rowcount == 1


def fence(conn: sa.Connection, message_id: int, token: int, values: Mapping[str, Any], *, now: dt.datetime) -> bool:
    """Update a claimed row only while this claim still holds it (status sending, same token)."""
    result = conn.execute(
        sa.update(messages)
        .where(messages.c.id == message_id, messages.c.lease_token == token, messages.c.status == "sending")
        .values({**values, "updated_at": now})
    )
    return result.rowcount == 1


def complete(conn: sa.Connection, completions: Sequence[Completion], now: dt.datetime) -> int:
    """Apply a batch of fenced completions in one transaction (one executemany per shape); returns rows changed.

    A stale worker's completion matches no row (its token is old), and its attempt update matches no
    attempt (the attempt's token moved with the takeover), so it changes nothing. An attempt whose row
    moved on without it (a receipt already said "delivered") still records its own outcome.
    """
    changed = 0
    for keys, group in _by_shape(completions, lambda item: _message_values(item.values)).items():
        c = messages.c
        statement = (
            sa.update(messages)
            .where(c.id == sa.bindparam("m_id"), c.lease_token == sa.bindparam("m_token"), c.status == "sending")
            .values({k: sa.bindparam(f"v_{k}") for k in (*keys, "updated_at")})
        )
        params = [
            {"m_id": item.message_id, "m_token": item.token, "v_updated_at": now}
            | {f"v_{k}": v for k, v in _message_values(item.values).items()}
            for item in group
        ]
        changed += _rowcount(conn.execute(statement, params), len(params))
    attempts = [item for item in completions if item.attempt_id is not None and item.attempt_values]
    for keys, group in _by_shape(attempts, lambda item: dict(item.attempt_values)).items():
        a = message_attempts.c
        statement = (
            sa.update(message_attempts)
            .where(a.id == sa.bindparam("a_id"), a.lease_token == sa.bindparam("a_token"))
            .where(a.status_rank < sa.bindparam("a_rank"))
            .values({k: sa.bindparam(f"v_{k}") for k in (*keys, "status_rank", "updated_at")})
        )
        params = [
            {"a_id": item.attempt_id, "a_token": item.token, "a_rank": ATTEMPT_RANK[item.attempt_values["status"]]}
            | {f"v_{k}": v for k, v in item.attempt_values.items()}
            | {"v_status_rank": ATTEMPT_RANK[item.attempt_values["status"]], "v_updated_at": now}
            for item in group
        ]
        conn.execute(statement, params)
    return changed


def _message_values(values: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(values)
    out.setdefault("status_rank", rank(out["status"]))
    if out["status"] != "sending":
        out.setdefault("lease_until", None)
    return out


def _by_shape(items: Sequence[Completion], values: Any) -> dict[tuple[str, ...], list[Completion]]:
    groups: dict[tuple[str, ...], list[Completion]] = {}
    for item in items:
        groups.setdefault(tuple(sorted(values(item))), []).append(item)
    return groups


def _rowcount(result: sa.CursorResult[Any], rows: int) -> int:
    # Drivers report an executemany's rowcount as the sum, or -1 when they cannot tell.
    return result.rowcount if result.rowcount >= 0 else rows


def _finish_attempt(
    conn: sa.Connection, attempt_id: int, token: int, values: Mapping[str, Any], now: dt.datetime
) -> bool:
    status = values["status"]
    new_rank = ATTEMPT_RANK[status]
    result = conn.execute(
        sa.update(message_attempts)
        .where(
            message_attempts.c.id == attempt_id,
            message_attempts.c.lease_token == token,
            message_attempts.c.status_rank < new_rank,
        )
        .values({**values, "status_rank": new_rank, "updated_at": now})
    )
    return result.rowcount == 1


def advance_message(
    conn: sa.Connection, message_id: int, status: str, values: Mapping[str, Any], *, now: dt.datetime
) -> bool:
    """Move a row forward only (rank strictly higher): how receipts change rows."""
    result = conn.execute(
        sa.update(messages)
        .where(messages.c.id == message_id, messages.c.status_rank < rank(status))
        .values({**values, "status": status, "status_rank": rank(status), "lease_until": None, "updated_at": now})
    )
    return result.rowcount == 1


def advance_attempt(
    conn: sa.Connection, attempt_id: int, status: str, values: Mapping[str, Any], *, now: dt.datetime
) -> bool:
    new_rank = ATTEMPT_RANK[status]
    result = conn.execute(
        sa.update(message_attempts)
        .where(message_attempts.c.id == attempt_id, message_attempts.c.status_rank < new_rank)
        .values({**values, "status": status, "status_rank": new_rank, "updated_at": now})
    )
    return result.rowcount == 1


def get_message(conn: sa.Connection, message_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(messages).where(messages.c.id == message_id)).mappings().first()
    return dict(row) if row else None


def attempts_of(conn: sa.Connection, message_id: int) -> list[dict[str, Any]]:
    query = (
        sa.select(message_attempts)
        .where(message_attempts.c.message_id == message_id)
        .order_by(message_attempts.c.number)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def attempt_by_reference(conn: sa.Connection, reference: str) -> dict[str, Any] | None:
    query = sa.select(message_attempts).where(message_attempts.c.reference == reference)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None
