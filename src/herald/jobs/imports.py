"""Import jobs: an uploaded file's batch is run by whichever worker claims it, and resumed after a crash."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from herald.contacts import importing
from herald.core.actor import Actor
from herald.core.clock import Clock
from herald.core.errors import HeraldError
from herald.db.runtime import Runtime
from herald.jobs import store
from herald.jobs.runner import JobKind, JobRun

KIND = "import"


def queue_import(
    engine: sa.Engine,
    clock: Clock,
    path: Path,
    *,
    batch_id: int,
    fmt: str,
    default_region: str,
    file_name: str,
    rejects_dir: Path,
    actor: Actor,
) -> int:
    """Queue an already created batch (its file saved at `path`) as a job; the batch row links to it."""
    payload = {
        "batch_id": batch_id,
        "path": str(path),
        "format": fmt,
        "default_region": default_region,
        "file_name": file_name,
        "rejects_dir": str(rejects_dir),
        # Who started it, so the batch and its audit rows name the operator or key, not the worker.
        "actor": {"label": actor.label, "id": actor.id, "ip": actor.ip, "kind": actor.kind},
    }
    with engine.begin() as conn:
        job_id = store.enqueue(conn, KIND, payload, now=clock.now())
        assert job_id is not None  # no dedupe key: always inserted
        importing.link_job(conn, batch_id, job_id)
    return job_id


def run_import_job(job: JobRun) -> Mapping[str, Any]:
    p = job.payload
    runtime = job.runtime
    report = importing.run_import(
        runtime.engine,
        runtime.clock,
        Path(p["path"]),
        fmt=p["format"],
        default_region=p["default_region"],
        batch_id=int(p["batch_id"]),
        file_name=p["file_name"],
        rejects_dir=Path(p["rejects_dir"]),
        actor=Actor(**p["actor"]),
        checkpoint=job.checkpoint,
        resume=job.resumed,
    )
    return {"batch_id": report.batch_id, "total_rows": report.total_rows, "counts": report.counts}


def abandon_import(runtime: Runtime, payload: dict[str, Any], reason: HeraldError) -> None:
    """The job gave up after repeated crashes: the batch fails with that reason and what it wrote is undone."""
    importing.fail_batch(runtime.engine, runtime.clock, int(payload["batch_id"]), reason)


IMPORT = JobKind(KIND, run_import_job, abandon_import)
