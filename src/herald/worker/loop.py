"""The worker loop: runs due jobs until stopped."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from herald.backup.schedule import run_due_backup
from herald.db.runtime import Runtime
from herald.delivery.housekeeping import prune_idempotency_keys
from herald.delivery.worker import run_delivery_pass

POLL_SECONDS = 1.0
HOUSEKEEPING_EVERY = dt.timedelta(minutes=10)
log = logging.getLogger(__name__)


def run_due_jobs(runtime: Runtime, *, concurrency: int = 1) -> int:
    """Run every job that is due now; return how many ran."""
    ran = 0
    if run_due_backup(runtime) is not None:
        ran += 1
    ran += run_delivery_pass(runtime, concurrency=concurrency)
    return ran


def run_worker(
    runtime: Runtime, *, once: bool = False, concurrency: int = 1, stop: threading.Event | None = None
) -> None:
    stop = stop or threading.Event()
    next_housekeeping = runtime.clock.now()
    while True:
        try:
            if runtime.clock.now() >= next_housekeeping:
                next_housekeeping = runtime.clock.now() + HOUSEKEEPING_EVERY
                prune_idempotency_keys(runtime)
            busy = run_due_jobs(runtime, concurrency=concurrency) > 0
        except Exception:
            busy = False
            # A worker that dies silently is worse than one that logs and tries again next pass.
            log.exception("worker pass failed; retrying in %.0f s", POLL_SECONDS)
        if once or stop.wait(0 if busy else POLL_SECONDS):
            return
