"""Scheduled-backup jobs: the worker queues one when the schedule says so; any worker takes and verifies it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.backup.schedule import backup_due, run_due_backup
from herald.db.runtime import Runtime
from herald.jobs import store
from herald.jobs.runner import JobKind, JobRun

KIND = "backup"


def queue_due_backup(runtime: Runtime) -> int | None:
    """Queue the scheduled backup when one is due and none is queued or running; its job id, or None."""
    if not backup_due(runtime):
        return None
    with runtime.engine.begin() as conn:
        # A killed backup leaves only temp files (removed later): running it again from scratch is safe.
        return store.enqueue(conn, KIND, {"kind": "scheduled"}, now=runtime.clock.now(), dedupe_key="backup:scheduled")


def run_backup_job(job: JobRun) -> Mapping[str, Any]:
    path = run_due_backup(job.runtime)
    return {"path": str(path) if path is not None else None}


BACKUP = JobKind(KIND, run_backup_job)
