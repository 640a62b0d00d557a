"""Job routes: the kind, status, progress, error and result of one durable job."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from herald.api.deps import RuntimeDep
from herald.api.errors import error_responses
from herald.core.inputs import Id
from herald.jobs import store

router = APIRouter(tags=["jobs"])


@router.get("/jobs/{job_id}", responses=error_responses(404))
def get_job(job_id: Id, runtime: RuntimeDep) -> dict[str, Any]:
    """`status` is queued, running, done or failed; `progress` {done, total, percent}; a failed job has
    `error: {code, message}` (also after a crash it could not recover from); a finished one its `result`."""
    return store.get_job(runtime.engine, job_id)
