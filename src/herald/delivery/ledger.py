"""The send ledger: a status enum, a frozen row type and pure transitions; claim with a lease and fencing token,
complete fenced (the SQL applies what the transitions decide)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

import sqlalchemy as sa

from herald.db.delivery_tables import message_attempts, messages
from herald.db.engine import dialect_insert
from herald.delivery.failover import Decision, next_channel


class Status(StrEnum):
    HELD = "held"
    QUEUED = "queued"
    RETRY_WAIT = "retry_wait"
    SENDING = "sending"
    UNKNOWN = "unknown"
    SENT = "sent"
    FAILED = "failed"
    DELIVERED = "delivered"


# The order a row's life moves in. Worker moves are fenced by lease_token; provider callbacks only ever
# move a row to a higher rank, so a late or out-of-order receipt cannot move it backwards.
STATUS_RANK: dict[str, int] = {
    Status.HELD: 10,
    Status.QUEUED: 10,
    Status.RETRY_WAIT: 10,
    Status.SENDING: 20,
    Status.UNKNOWN: 25,
    Status.SENT: 30,
    Status.FAILED: 40,
    Status.DELIVERED: 50,
}
CLAIMABLE = (Status.QUEUED, Status.RETRY_WAIT, Status.UNKNOWN)
SETTLED = (Status.SENT, Status.FAILED, Status.DELIVERED)
# An attempt in these states may have been accepted: the row may not start another one (R1.9).
OPEN_ATTEMPT = ("submitting", "unknown")
# A provider's receipt may say an attempt was accepted before the claim that made it recorded its outcome
# (and that worker may die): the row is then settled from the receipt, never given a second attempt.
ACCEPTED_ATTEMPT = ("sent", "delivered")

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
class LedgerRow:
    """The part of a message row its transitions read: status, plan position, fencing token, attempt."""

    id: int
    status: Status
    channels: tuple[str, ...]
    plan_index: int = 0
    retries: int = 0
    lease_token: int = 0
    current_attempt_id: int | None = None
    releasable: bool = False
    skips: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> LedgerRow:
        return cls(
            id=int(row["id"]),
            status=Status(row["status"]),
            channels=tuple(row["channels"]),
            plan_index=int(row["plan_index"]),
            retries=int(row.get("retries") or 0),
            lease_token=int(row.get("lease_token") or 0),
            current_attempt_id=row.get("current_attempt_id"),
            releasable=bool(row.get("releasable")),
            skips=tuple(row.get("skips") or ()),
        )

    @property
    def channel(self) -> str:
        return self.channels[self.plan_index]


@dataclass(frozen=True, slots=True)
class Change:
    """What a transition decided: the new status and the columns to write with it."""

    status: Status
    values: Mapping[str, Any] = field(default_factory=dict)

    def row_values(self) -> dict[str, Any]:
        return {"status": self.status.value, **self.values}

    def applied_to(self, row: LedgerRow) -> LedgerRow:
        """The row after this change (what the SQL writes), for callers and tests that chain transitions."""
        keep = {k: self.values[k] for k in ("plan_index", "retries", "lease_token", "current_attempt_id")
                if k in self.values}  # fmt: skip
        skips = tuple(self.values["skips"]) if "skips" in self.values else row.skips
        return replace(row, status=self.status, skips=skips, **keep)


ReceiptKind = Literal["sent", "delivered", "failed"]
Verdict = Literal["found", "dead", "never_accepted", "absent", "pending", "unsupported", "lookup_failed"]


# --- pure transitions: every state change of a row is one of these ---------------------------------------


def claim_row(row: LedgerRow, *, lease_expired: bool = False) -> Change | None:
    """The claim transition (`claim` below runs it in SQL for a batch): take a due row (claimable, a
    releasable hold, or a claim whose lease ran out). The token moves on, so whoever held the row before
    can no longer complete it."""
    due = row.status in CLAIMABLE or (row.status is Status.HELD and row.releasable)
    if not (due or (row.status is Status.SENDING and lease_expired)):
        return None
    return Change(Status.SENDING, {"lease_token": row.lease_token + 1})


def attempt(
    row: LedgerRow, token: int, *, attempt_id: int, plan_index: int, current_attempt_status: str | None
) -> Change | None:
    """Start a new attempt on channel `plan_index`; refused while fenced out or while the current attempt
    may have been accepted (it must be resumed or looked up instead: never a second send)."""
    if not _holds(row, token) or current_attempt_status in (*OPEN_ATTEMPT, *ACCEPTED_ATTEMPT):
        return None
    if current_attempt_status == "failed" and plan_index == row.plan_index:
        return None  # accepted, then reported failed (a bounce): this channel is done, only a later one may go
    if plan_index < row.plan_index or plan_index >= len(row.channels):
        return None
    values: dict[str, Any] = {"current_attempt_id": attempt_id, "plan_index": plan_index}
    if plan_index != row.plan_index:
        values["retries"] = 0
    return Change(Status.SENDING, values)


def outcome(row: LedgerRow, token: int, decision: Decision, *, detail: str | None, now: dt.datetime) -> Change | None:
    """The claim's own attempt ended with `decision` (failover.after_attempt); None when fenced out."""
    if not _holds(row, token):
        return None
    if decision.action == "send":
        return Change(Status.SENT, {"last_error": None})
    if decision.action == "wait":
        return Change(Status.UNKNOWN, {"last_error": detail, "available_at": decision.available_at})
    common = {"plan_index": decision.plan_index, "retries": decision.retries, "last_error": detail}
    if decision.action == "retry":
        return Change(Status.RETRY_WAIT, {**common, "available_at": decision.available_at})
    skips = [*row.skips, {"channel": row.channel, "reason": decision.reason, "at": now.isoformat()}]
    if decision.action == "advance":
        return Change(Status.QUEUED, {**common, "available_at": decision.available_at, "skips": skips})
    return Change(Status.FAILED, {**common, "skips": skips})


def failover(row: LedgerRow, reason: str, now: dt.datetime) -> Change:
    """The current channel is done for (a failure receipt, a dead submission): the next channel, or failed."""
    return _after_decision(row, next_channel(row.plan_index, len(row.channels), now, reason), reason, now)


def receipt(row: LedgerRow, attempt_id: int, kind: ReceiptKind, *, reason: str, now: dt.datetime) -> Change | None:
    """A provider's receipt for one attempt: forward only, except a failure of the current attempt, which
    moves the plan on (compare-and-set on the current attempt, so an old attempt's receipt cannot)."""
    if kind == "delivered":
        # Delivered anywhere ends the plan, even for an earlier channel after a failover.
        return Change(Status.DELIVERED) if rank(Status.DELIVERED) > rank(row.status) else None
    if row.current_attempt_id != attempt_id:
        return None
    if kind == "sent":
        return Change(Status.SENT) if row.status is Status.UNKNOWN else None
    if row.status not in (Status.SENT, Status.UNKNOWN):
        return None
    change = failover(row, reason, now)
    if change.status is Status.QUEUED:
        return Change(change.status, {**change.values, "retries": 0, "available_at": now})
    return Change(change.status, {**change.values, "last_error": reason})


def reconcile(
    row: LedgerRow,
    token: int,
    verdict: Verdict,
    *,
    now: dt.datetime,
    retry_at: dt.datetime,
    may_resubmit: bool,
    note: str,
    reason: str = "",
) -> Change | None:
    """What a look-up of an unknown attempt found: sent, dead (fail over), never accepted (a new attempt
    is safe), or still unknown until `retry_at`. `may_resubmit`: an absent record is final."""
    if not _holds(row, token):
        return None
    if verdict == "found":
        return Change(Status.SENT)
    if verdict == "dead":
        decision = next_channel(row.plan_index, len(row.channels), now, reason or note)
        return _after_decision(row, decision, note, now)
    if verdict == "never_accepted" or (verdict == "absent" and may_resubmit):
        return Change(Status.RETRY_WAIT, {"available_at": now})
    return Change(Status.UNKNOWN, {"available_at": retry_at, "last_error": note})


# Attempt statuses that prove the provider took nothing: a transient failure, or a refusal.
NEVER_ACCEPTED = ("retry", "rejected")


def retry_failed(row: LedgerRow, attempt_statuses: Sequence[str], now: dt.datetime) -> Change | None:
    """An operator's "retry failed" (campaigns): a failed row goes back to the start of its plan, but only when
    every attempt it made shows the provider accepted nothing. An attempt that was accepted, may have been
    (submitting, unknown) or ended `failed` after a receipt (a bounce of an accepted message) refuses it, so
    this can never give a second accepted send. The one transition that moves a settled row back: on purpose."""
    if row.status is not Status.FAILED or any(s not in NEVER_ACCEPTED for s in attempt_statuses):
        return None
    return Change(Status.QUEUED, {"plan_index": 0, "retries": 0, "available_at": now, "last_error": None})


def _holds(row: LedgerRow, token: int) -> bool:
    return row.status is Status.SENDING and row.lease_token == token


def _after_decision(row: LedgerRow, decision: Decision, detail: str, now: dt.datetime) -> Change:
    change = outcome(replace(row, status=Status.SENDING), row.lease_token, decision, detail=detail, now=now)
    assert change is not None
    return change


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
    variables: Mapping[str, Any] | None = None  # set with empty content: render at claim time
    campaign_id: int | None = None


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


def row_values(message: NewMessage, now: dt.datetime) -> dict[str, Any]:
    """The `messages` row a NewMessage becomes (enqueue and the bulk path in bulk_plan write the same)."""
    return {
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
        "variables": None if message.variables is None else dict(message.variables),
        "campaign_id": message.campaign_id,
        "available_at": message.available_at,
        "created_at": now,
        "updated_at": now,
    }


def enqueue(conn: sa.Connection, message: NewMessage, now: dt.datetime) -> Enqueued:
    """Insert the ledger row in the caller's transaction; an existing (person, key) row wins and is returned."""
    statement = (
        dialect_insert(conn, messages)
        .values(row_values(message, now))
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
