"""Duplicate-scan jobs: the page's and the API's "scan" runs in a worker, one scan at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from herald.contacts import dedupe
from herald.contacts.evidence import NAME_THRESHOLD
from herald.core.clock import Clock
from herald.jobs import store
from herald.jobs.runner import JobKind, JobRun

KIND = "duplicate_scan"


def queue_scan(engine: sa.Engine, clock: Clock, threshold: float = NAME_THRESHOLD) -> tuple[int, bool]:
    """Queue a scan; while one is already queued or running, return that one instead. (job id, newly queued)"""
    with engine.begin() as conn:
        job_id = store.enqueue(conn, KIND, {"threshold": threshold}, now=clock.now(), dedupe_key=KIND)
        if job_id is not None:
            return job_id, True
        active = store.active_with_key(conn, KIND)
    if active is None:  # it finished between our insert and our read: queue again
        return queue_scan(engine, clock, threshold)
    return active, False


def run_scan_job(job: JobRun) -> Mapping[str, Any]:
    runtime = job.runtime
    result = dedupe.compute_suggestions(runtime.engine, runtime.clock, float(job.payload["threshold"]))
    return {
        "new": result.new,
        "refreshed": result.refreshed,
        "withdrawn": result.withdrawn,
        "open_total": result.open_total,
    }


DUPLICATE_SCAN = JobKind(KIND, run_scan_job)
