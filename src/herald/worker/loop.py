"""The worker loop: runs due jobs until stopped."""

from __future__ import annotations

import threading

from herald.db.runtime import Runtime

POLL_SECONDS = 1.0


def run_due_jobs(runtime: Runtime) -> int:
    """Run every job that is due now; return how many ran."""
    return 0


def run_worker(
    runtime: Runtime, *, once: bool = False, concurrency: int = 1, stop: threading.Event | None = None
) -> None:
    stop = stop or threading.Event()
    while True:
        run_due_jobs(runtime)
        if once or stop.wait(POLL_SECONDS):
            return
