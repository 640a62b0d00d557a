"""Scheduled backups: decide when one is due, take and verify it, and keep only the newest N."""

from __future__ import annotations

import datetime as dt
import shutil
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from herald.backup.backup import Outcome, default_backup_path, record_backup, take_backup
from herald.core.actor import SYSTEM
from herald.core.errors import InvalidInputError
from herald.db.backup_tables import backups
from herald.db.runtime import Runtime
from herald.db.unit_of_work import unit_of_work

SCHEDULES = ("off", "hourly", "daily", "weekly", "monthly")
# A failed attempt is retried after this long rather than on every worker pass.
RETRY_AFTER = dt.timedelta(hours=1)
# Leftovers of a killed backup (temp file, scratch restore) are removed once surely abandoned.
STALE_AFTER = dt.timedelta(hours=24)
_LOCK_KEY = zlib.crc32(b"herald.backup.schedule")


def parse_schedule(value: str) -> str:
    schedule = value.strip().lower()
    if schedule not in SCHEDULES:
        raise InvalidInputError(
            f"HERALD_BACKUP_SCHEDULE must be one of {', '.join(SCHEDULES)}, not {value!r}.",
            field="backup_schedule",
        )
    return schedule


def period_start(schedule: str, at: dt.datetime) -> dt.datetime:
    """The start (UTC) of the calendar period that AT falls in: one scheduled backup per period."""
    at = at.astimezone(dt.UTC)
    hour = at.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    starts = {
        "hourly": hour,
        "daily": day,
        "weekly": day - dt.timedelta(days=day.weekday()),
        "monthly": day.replace(day=1),
    }
    return starts[schedule]


def is_due(schedule: str, now: dt.datetime, last_at: dt.datetime | None, last_status: str | None) -> bool:
    """Due when the newest scheduled attempt lies in an earlier period, or failed over an hour ago."""
    if schedule == "off":
        return False
    if last_at is None or last_at < period_start(schedule, now):
        return True
    return last_status == "failed" and now - last_at >= RETRY_AFTER


@contextmanager
def _only_one_runner(engine: sa.Engine) -> Iterator[bool]:
    """On PostgreSQL several workers may poll at once; an advisory lock lets one of them take the backup."""
    if engine.dialect.name != "postgresql":
        yield True  # SQLite deployments run one embedded worker
        return
    with engine.connect() as conn:
        got = bool(conn.scalar(sa.select(sa.func.pg_try_advisory_lock(_LOCK_KEY))))
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.scalar(sa.select(sa.func.pg_advisory_unlock(_LOCK_KEY)))
                conn.commit()


def _newest_scheduled(engine: sa.Engine) -> tuple[dt.datetime | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(backups.c.created_at, backups.c.status)
            .where(backups.c.kind == "scheduled")
            .order_by(backups.c.created_at.desc(), backups.c.id.desc())
            .limit(1)
        ).first()
    return (row.created_at, row.status) if row else (None, None)


def _take_scheduled(runtime: Runtime) -> Path:
    created_at = runtime.clock.now()
    path = default_backup_path(runtime.settings.resolved_backup_dir, created_at, "scheduled")
    try:
        row = take_backup(runtime, SYSTEM, kind="scheduled", out=path)
    except Exception as exc:  # a background job: record the failure instead of killing the worker
        with unit_of_work(runtime.engine, runtime.clock, SYSTEM) as uow:
            record_backup(
                uow,
                path=path,
                kind="scheduled",
                created_at=created_at,
                written=None,
                outcome=Outcome("failed", f"{type(exc).__name__}: {exc}", None),
            )
        return path
    return Path(row["path"])


def apply_retention(runtime: Runtime) -> list[Path]:
    """Keep the N newest verified scheduled backups (and at most N failed ones); delete the rest."""
    keep = runtime.settings.backup_retention
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            sa.select(backups.c.id, backups.c.path, backups.c.status)
            .where(backups.c.kind == "scheduled")
            .order_by(backups.c.created_at.desc(), backups.c.id.desc())
        ).all()
    verified = [r for r in rows if r.status == "verified"]
    failed = [r for r in rows if r.status != "verified"]
    doomed = verified[keep:] + failed[keep:]
    return [_delete_backup(runtime.engine, row) for row in doomed]


def _delete_backup(engine: sa.Engine, row: Any) -> Path:
    # File first: a crash in between leaves a row whose file is gone, which the next pass removes.
    path = Path(row.path)
    path.unlink(missing_ok=True)
    with engine.begin() as conn:
        conn.execute(backups.delete().where(backups.c.id == row.id))
    return path


def remove_stale_leftovers(directory: Path, now: dt.datetime) -> list[Path]:
    """Delete temp files and scratch directories that a killed backup left behind."""
    cutoff = (now - STALE_AFTER).timestamp()
    stale = [
        path
        for pattern in (".herald-*.tmp", ".herald-verify-*")
        for path in directory.glob(pattern)
        if path.stat().st_mtime < cutoff
    ]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def backup_due(runtime: Runtime) -> bool:
    """Whether the schedule asks for a backup now (a cheap read; the worker then queues a backup job)."""
    schedule = parse_schedule(runtime.settings.backup_schedule)
    if schedule == "off":
        return False
    last_at, last_status = _newest_scheduled(runtime.engine)
    return is_due(schedule, runtime.clock.now(), last_at, last_status)


def run_due_backup(runtime: Runtime) -> Path | None:
    """Take a scheduled backup if one is due; return the path attempted (see its row for the outcome)."""
    schedule = parse_schedule(runtime.settings.backup_schedule)
    if schedule == "off":
        return None
    with _only_one_runner(runtime.engine) as got_lock:
        if not got_lock:
            return None
        last_at, last_status = _newest_scheduled(runtime.engine)
        if not is_due(schedule, runtime.clock.now(), last_at, last_status):
            return None
        path = _take_scheduled(runtime)
        apply_retention(runtime)
        if path.parent.is_dir():
            remove_stale_leftovers(path.parent, runtime.clock.now())
        return path
