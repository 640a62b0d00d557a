"""The worker loop: runs due jobs until stopped."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from herald.backup.schedule import run_due_backup
from herald.db.runtime import Runtime
from herald.delivery import heartbeat
from herald.delivery.housekeeping import prune_idempotency_keys
from herald.delivery.worker import close_delivery, run_delivery_pass

POLL_SECONDS = 1.0
HOUSEKEEPING_EVERY = dt.timedelta(minutes=10)
HEARTBEAT_EVERY = dt.timedelta(seconds=15)  # well inside heartbeat.FRESH_FOR
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
    """Run passes until `stop` is set (or one pass with `once`); a long-running worker keeps a heartbeat."""
    stop = stop or threading.Event()
    name, started = heartbeat.worker_name(), runtime.clock.now()
    next_housekeeping = next_beat = runtime.clock.now()
    try:
        while True:
            try:
                now = runtime.clock.now()
                if not once and now >= next_beat:
                    next_beat = now + HEARTBEAT_EVERY
                    heartbeat.beat(runtime, name, started)
                if now >= next_housekeeping:
                    next_housekeeping = now + HOUSEKEEPING_EVERY
                    prune_idempotency_keys(runtime)
                busy = run_due_jobs(runtime, concurrency=concurrency) > 0
            except Exception:
                busy = False
                # A worker that dies silently is worse than one that logs and tries again next pass.
                log.exception("worker pass failed; retrying in %.0f s", POLL_SECONDS)
            if once or stop.wait(0 if busy else POLL_SECONDS):
                return
    finally:
        # Providers hold threads and connections (the embedded SMS simulator, SMTP pools): close them here,
        # or interpreter shutdown tears them down mid-flight and `herald worker --once` ends in a traceback.
        close_delivery(runtime)
        if not once:
            _forget(runtime, name)


def _forget(runtime: Runtime, name: str) -> None:
    try:
        heartbeat.stopped(runtime, name)
    except Exception:
        # The row goes stale by itself after heartbeat.FRESH_FOR; a failed cleanup must not mask the exit.
        log.warning("could not remove worker heartbeat %s", name, exc_info=True)
