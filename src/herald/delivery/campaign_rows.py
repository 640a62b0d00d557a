"""A campaign's ledger rows, set-based: pause, resume, cancel, retry failed, counts and the held list.

Every control is one UPDATE over `messages WHERE campaign_id = …` whose WHERE clause only takes rows no worker
holds (never `sending` or `unknown`), so it races with claims safely: a row is either claimed first (and
finishes its send) or moved first (and no worker sees it as due). Nothing here ever creates a send.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.db.delivery_tables import message_attempts, messages
from herald.delivery.ledger import NEVER_ACCEPTED, Status, rank

PAUSED = "paused"
CANCELLED = "cancelled"
# Rows a pause takes: due or waiting to be due, not in a worker's hands.
PAUSABLE = (Status.QUEUED.value, Status.RETRY_WAIT.value)
# Rows a cancel takes: everything not yet handed to a provider.
CANCELLABLE = (Status.QUEUED.value, Status.RETRY_WAIT.value, Status.HELD.value)
# Rows the worker will still move by itself: while a campaign has any, it is not finished.
WAITING = (Status.QUEUED.value, Status.RETRY_WAIT.value, Status.SENDING.value, Status.UNKNOWN.value)


def _campaign(campaign_id: int) -> sa.ColumnElement[bool]:
    return messages.c.campaign_id == campaign_id


def pause_rows(conn: sa.Connection, campaign_id: int, now: dt.datetime) -> int:
    """Queued, retry_wait and releasable held rows → held `paused:<what it was>` (not releasable).

    The old state rides in the reason (`paused:queued`, `paused:retry_wait`, `paused:held:quiet_hours`), so
    resume can put each row back exactly; `available_at` is kept.
    """
    c = messages.c
    was_held = c.status == Status.HELD.value
    reason = (
        sa.literal(f"{PAUSED}:") + c.status + sa.case((was_held, ":" + sa.func.coalesce(c.hold_reason, "")), else_="")
    )
    result = conn.execute(
        sa.update(messages)
        .where(_campaign(campaign_id), sa.or_(c.status.in_(PAUSABLE), sa.and_(was_held, c.releasable.is_(True))))
        .values(
            status=Status.HELD.value,
            status_rank=rank(Status.HELD),
            hold_reason=reason,
            releasable=False,
            updated_at=now,
        )
    )
    return int(result.rowcount)


def resume_rows(conn: sa.Connection, campaign_id: int, now: dt.datetime) -> int:
    """Paused rows back to what they were, at their planned time (already past: due now). The worker checks
    quiet hours again when it claims them, so a row resumed at night still waits for the morning."""
    c = messages.c
    changed = 0
    for before, status, releasable in (
        (f"{PAUSED}:{Status.QUEUED.value}", Status.QUEUED, False),
        (f"{PAUSED}:{Status.RETRY_WAIT.value}", Status.RETRY_WAIT, False),
    ):
        result = conn.execute(
            sa.update(messages)
            .where(_campaign(campaign_id), c.status == Status.HELD.value, c.hold_reason == before)
            .values(
                status=status.value, status_rank=rank(status), hold_reason=None, releasable=releasable, updated_at=now
            )
        )
        changed += int(result.rowcount)
    prefix = f"{PAUSED}:{Status.HELD.value}:"
    result = conn.execute(
        sa.update(messages)
        .where(_campaign(campaign_id), c.status == Status.HELD.value, c.hold_reason.startswith(prefix, autoescape=True))
        .values(hold_reason=sa.func.substr(c.hold_reason, len(prefix) + 1), releasable=True, updated_at=now)
    )
    return changed + int(result.rowcount)


def cancel_rows(conn: sa.Connection, campaign_id: int, now: dt.datetime) -> int:
    """Everything not yet sent (queued, retry_wait, held for any reason, paused) → held `cancelled`, for good."""
    c = messages.c
    result = conn.execute(
        sa.update(messages)
        .where(
            _campaign(campaign_id),
            c.status.in_(CANCELLABLE),
            sa.or_(c.hold_reason.is_(None), c.hold_reason != CANCELLED),
        )
        .values(
            status=Status.HELD.value,
            status_rank=rank(Status.HELD),
            hold_reason=CANCELLED,
            releasable=False,
            updated_at=now,
        )
    )
    return int(result.rowcount)


def retry_failed_rows(conn: sa.Connection, campaign_id: int, now: dt.datetime) -> int:
    """`ledger.retry_failed` as one UPDATE: failed rows never sent whose every attempt is in NEVER_ACCEPTED."""
    c, a = messages.c, message_attempts.c
    accepted_or_maybe = sa.select(a.id).where(a.message_id == c.id, a.status.not_in(NEVER_ACCEPTED)).exists()
    result = conn.execute(
        sa.update(messages)
        .where(_campaign(campaign_id), c.status == Status.FAILED.value, c.sent_at.is_(None), ~accepted_or_maybe)
        .values(
            status=Status.QUEUED.value,
            status_rank=rank(Status.QUEUED),
            plan_index=0,
            retries=0,
            available_at=now,
            last_error=None,
            hold_reason=None,
            updated_at=now,
        )
    )
    return int(result.rowcount)


def has_waiting(conn: sa.Connection, campaign_id: int) -> bool:
    """Whether any of the campaign's rows is still to be moved by a worker (see WAITING)."""
    query = sa.select(messages.c.id).where(_campaign(campaign_id), messages.c.status.in_(WAITING)).limit(1)
    return conn.execute(query).first() is not None


def existing_people(conn: sa.Connection, person_ids: Sequence[int], message_key: str) -> set[int]:
    """Which of these people already have a row under this key (the simulation's `duplicate`)."""
    c = messages.c
    found: set[int] = set()
    for start in range(0, len(person_ids), 900):
        part = list(person_ids[start : start + 900])
        query = sa.select(c.person_id).where(c.message_key == message_key, c.person_id.in_(part))
        found.update(int(pid) for pid in conn.execute(query).scalars())
    return found


@dataclass(frozen=True, slots=True)
class RowCount:
    status: str
    hold_reason: str | None
    channel: str | None
    count: int


def counts(conn: sa.Connection, campaign_id: int) -> list[RowCount]:
    """The campaign's rows grouped by status, hold reason and current channel."""
    c = messages.c
    query = (
        sa.select(c.status, c.hold_reason, c.channels, c.plan_index, sa.func.count())
        .where(_campaign(campaign_id))
        .group_by(c.status, c.hold_reason, c.channels, c.plan_index)
    )
    out = []
    for status, reason, channels, plan_index, count in conn.execute(query):
        channel = channels[plan_index] if channels and plan_index < len(channels) else None
        out.append(RowCount(status, reason, channel, int(count)))
    return out


def counts_many(conn: sa.Connection, campaign_ids: Sequence[int]) -> dict[int, list[RowCount]]:
    """`counts` for several campaigns in one grouped read (the campaigns list)."""
    out: dict[int, list[RowCount]] = {campaign_id: [] for campaign_id in campaign_ids}
    if not campaign_ids:
        return out
    c = messages.c
    query = (
        sa.select(c.campaign_id, c.status, c.hold_reason, c.channels, c.plan_index, sa.func.count())
        .where(c.campaign_id.in_(list(campaign_ids)))
        .group_by(c.campaign_id, c.status, c.hold_reason, c.channels, c.plan_index)
    )
    for campaign_id, status, reason, channels, plan_index, count in conn.execute(query):
        channel = channels[plan_index] if channels and plan_index < len(channels) else None
        out[int(campaign_id)].append(RowCount(status, reason, channel, int(count)))
    return out


def held_rows(conn: sa.Connection, campaign_id: int, *, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """One page of the campaign's held rows (oldest id first) and how many there are."""
    c = messages.c
    where = sa.and_(_campaign(campaign_id), c.status == Status.HELD.value)
    total = int(conn.execute(sa.select(sa.func.count()).select_from(messages).where(where)).scalar_one())
    query = (
        sa.select(c.id, c.person_id, c.hold_reason, c.channels, c.plan_index, c.available_at)
        .where(where)
        .order_by(c.id)
        .offset(offset)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()], total


def campaign_rows(conn: sa.Connection, campaign_id: int) -> list[dict[str, Any]]:
    """Every row of the campaign (person, status, reason, channels, available_at, …), by person."""
    query = sa.select(messages).where(_campaign(campaign_id)).order_by(messages.c.person_id)
    return [dict(r) for r in conn.execute(query).mappings()]
