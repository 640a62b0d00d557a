"""The jobs table's statements: enqueue, claim with a lease and fencing token, checkpoint, finish, read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.core.errors import NotFoundError
from herald.db.engine import dialect_insert, read_connection
from herald.db.job_tables import ACTIVE, jobs

STATUSES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class Claim:
    """One claimed job: its fencing token must accompany every write the run makes."""

    id: int
    kind: str
    token: int
    attempts: int
    max_attempts: int
    payload: dict[str, Any]
    progress_done: int


def enqueue(
    conn: sa.Connection,
    kind: str,
    payload: Mapping[str, Any],
    *,
    now: dt.datetime,
    dedupe_key: str | None = None,
    available_at: dt.datetime | None = None,
    max_attempts: int = 3,
) -> int | None:
    """Queue a job in the caller's transaction; with `dedupe_key`, None when an active one already holds it."""
    values = {
        "kind": kind,
        "status": "queued",
        "payload": dict(payload),
        "dedupe_key": dedupe_key,
        "max_attempts": max_attempts,
        "available_at": available_at or now,
        "created_at": now,
        "updated_at": now,
    }
    statement = dialect_insert(conn, jobs).values(values)
    if dedupe_key is not None:
        statement = statement.on_conflict_do_nothing(
            index_elements=["dedupe_key"], index_where=jobs.c.status.in_(ACTIVE)
        )
    job_id = conn.scalar(statement.returning(jobs.c.id))
    return int(job_id) if job_id is not None else None


def _due(now: dt.datetime) -> sa.ColumnElement[bool]:
    c = jobs.c
    return sa.or_(
        sa.and_(c.status == "queued", c.available_at <= now),
        sa.and_(c.status == "running", c.lease_until < now),  # its worker died or stalled
    )


def has_due(engine: sa.Engine, now: dt.datetime) -> bool:
    """A cheap read first, so idle workers do not take SQLite's write lock every poll."""
    with read_connection(engine) as conn:
        return conn.scalar(sa.select(jobs.c.id).where(_due(now)).limit(1)) is not None


def claim(conn: sa.Connection, *, now: dt.datetime, worker: str, lease: dt.timedelta) -> Claim | None:
    """Take the oldest due job: UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING.

    On SQLite the FOR UPDATE is dropped and the engine's BEGIN IMMEDIATE serialises claimers. A job whose
    lease ran out is claimed again with a higher token, so its first worker, if alive, can change nothing.
    """
    c = jobs.c
    pick = sa.select(c.id).where(_due(now)).order_by(c.available_at, c.id).limit(1)
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    row = (
        conn.execute(
            jobs.update()
            .where(c.id == pick.scalar_subquery())
            .values(
                status="running",
                worker=worker,
                lease_until=now + lease,
                lease_token=c.lease_token + 1,
                attempts=c.attempts + 1,
                started_at=sa.func.coalesce(c.started_at, now),
                updated_at=now,
            )
            .returning(c.id, c.kind, c.lease_token, c.attempts, c.max_attempts, c.payload, c.progress_done)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return Claim(
        id=row["id"],
        kind=row["kind"],
        token=row["lease_token"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        payload=dict(row["payload"]),
        progress_done=row["progress_done"],
    )


def fenced(conn: sa.Connection, held: Claim, values: Mapping[str, Any]) -> bool:
    """Update the job only while this claim still holds it (running, same token); False means it was taken over."""
    c = jobs.c
    result = conn.execute(
        jobs.update().where(c.id == held.id, c.lease_token == held.token, c.status == "running").values(**values)
    )
    return result.rowcount == 1


def get_job(engine: sa.Engine, job_id: int) -> dict[str, Any]:
    """A job as the API and the CLI show it."""
    with read_connection(engine) as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"No job with id {job_id}.", id=job_id)
    return job_view(row)


def list_jobs(
    engine: sa.Engine, *, status: str | None = None, kind: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest jobs first, optionally of one status or kind."""
    query = sa.select(jobs).order_by(jobs.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(jobs.c.status == status)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    with read_connection(engine) as conn:
        return [job_view(row) for row in conn.execute(query).mappings()]


def job_view(row: sa.RowMapping) -> dict[str, Any]:
    total = row["progress_total"]
    done = row["progress_done"]
    if row["status"] == "done":
        percent: int | None = 100
    elif total:
        percent = min(99, int(100 * done / total))
    else:
        percent = None
    error = {"code": row["error_code"] or "job_failed", "message": row["error"]} if row["error"] else None
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": row["status"],
        "progress": {"done": done, "total": total, "percent": percent},
        "error": error,
        "result": row["result"],
        "attempts": row["attempts"],
        "max_attempts": row["max_attempts"],
        "worker": row["worker"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "lease_until": row["lease_until"] if row["status"] == "running" else None,
    }


def active_with_key(conn: sa.Connection, dedupe_key: str) -> int | None:
    """The queued or running job that holds `dedupe_key`, if any."""
    job_id = conn.scalar(sa.select(jobs.c.id).where(jobs.c.dedupe_key == dedupe_key, jobs.c.status.in_(ACTIVE)))
    return int(job_id) if job_id is not None else None
