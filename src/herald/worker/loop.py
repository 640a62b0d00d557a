"""The worker loop: queue scheduled work, run jobs, dispatch events, deliver; back off while passes fail."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from herald.campaigns.finisher import finish_settled
from herald.core.errors import StorageUnavailableError
from herald.db.runtime import Runtime
from herald.delivery import heartbeat
from herald.delivery.housekeeping import prune_idempotency_keys
from herald.delivery.worker import close_delivery, run_delivery_pass
from herald.events.dispatcher import Dispatcher
from herald.jobs.backups import queue_due_backup
from herald.jobs.kinds import job_kinds
from herald.jobs.runner import JobKinds, run_jobs_until, run_queued_jobs

POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
HOUSEKEEPING_EVERY = dt.timedelta(minutes=10)
HEARTBEAT_EVERY = dt.timedelta(seconds=15)  # well inside heartbeat.FRESH_FOR
log = logging.getLogger(__name__)

# Waits up to the given seconds; True means "stop now" (threading.Event.wait has this contract).
Wait = Callable[[float], bool]


def subscriptions() -> Dispatcher:
    """The event handlers this worker feeds; tracking, scoring, journeys and the inbox subscribe here."""
    return Dispatcher()


def run_due_jobs(
    runtime: Runtime,
    *,
    concurrency: int = 1,
    kinds: JobKinds | None = None,
    dispatcher: Dispatcher | None = None,
    inline_jobs: bool = True,
) -> int:
    """One pass: queue a due backup, run queued jobs (unless a job thread does), dispatch events, deliver,
    and mark campaigns with nothing left to send finished."""
    ran = 0
    queue_due_backup(runtime)  # counted when its job runs
    if inline_jobs:
        ran += run_queued_jobs(runtime, kinds or job_kinds())
    ran += (dispatcher or subscriptions()).dispatch(runtime)
    ran += run_delivery_pass(runtime, concurrency=concurrency)
    ran += finish_settled(runtime)
    return ran


@dataclass
class Backoff:
    """Exponential back-off after consecutive failed passes: 1, 2, 4 … seconds, capped."""

    base: float = POLL_SECONDS
    cap: float = MAX_BACKOFF_SECONDS
    failures: int = 0

    def fail(self) -> float:
        self.failures += 1
        return min(self.cap, self.base * 2.0 ** (self.failures - 1))

    def succeed(self) -> int:
        failures, self.failures = self.failures, 0
        return failures


def run_worker(
    runtime: Runtime,
    *,
    once: bool = False,
    concurrency: int = 1,
    stop: threading.Event | None = None,
    jobs: Callable[[Runtime], int] | None = None,
    wait: Wait | None = None,
    jobs_only: bool = False,
) -> None:
    """Loop until `stop` is set (or one pass with `once`); a long-running worker keeps a heartbeat.

    `jobs_only` runs durable jobs (and queues scheduled backups) but delivers nothing: such a worker keeps no
    delivery heartbeat. `jobs` and `wait` are injectable so tests can drive the loop.
    """
    stop = stop or threading.Event()
    wait = wait or stop.wait
    kinds, dispatcher = job_kinds(), subscriptions()
    if jobs_only and jobs is None:
        jobs = lambda rt: (queue_due_backup(rt), run_queued_jobs(rt, kinds))[1]  # noqa: E731
    # A long-running worker runs jobs on a thread of their own, so a large import never holds up deliveries;
    # `--once` runs them inline. A job the process dies in is resumed by whichever worker claims it next.
    job_thread: threading.Thread | None = None
    jobs_stop = threading.Event()
    if jobs is None and not once:
        job_thread = threading.Thread(
            target=run_jobs_until, args=(runtime, kinds, jobs_stop), daemon=True, name="herald-jobs"
        )
        job_thread.start()
    jobs = jobs or (
        lambda rt: run_due_jobs(
            rt, concurrency=concurrency, kinds=kinds, dispatcher=dispatcher, inline_jobs=job_thread is None
        )
    )
    backoff = Backoff()
    name, started = heartbeat.worker_name(), runtime.clock.now()
    next_housekeeping = next_beat = runtime.clock.now()
    try:
        while True:
            delay = 0.0
            try:
                now = runtime.clock.now()
                if not once and not jobs_only and now >= next_beat:
                    next_beat = now + HEARTBEAT_EVERY
                    heartbeat.beat(runtime, name, started)
                if now >= next_housekeeping:
                    next_housekeeping = now + HOUSEKEEPING_EVERY
                    prune_idempotency_keys(runtime)
                busy = jobs(runtime) > 0
                if failures := backoff.succeed():
                    log.warning("worker recovered after %d failed passes", failures)
                delay = 0.0 if busy else POLL_SECONDS
            except StorageUnavailableError as exc:
                # Expected while the disk is full: one line per attempt, and attempts thin out exponentially.
                delay = backoff.fail()
                log.warning("worker pass failed: %s; retrying in %.0f s", exc.message, delay)
            except Exception:
                # A worker that dies silently is worse than one that logs and tries again; the traceback
                # is logged for the first failure of a streak only, then one line per (growing) interval.
                delay = backoff.fail()
                if backoff.failures == 1:
                    log.exception("worker pass failed; retrying in %.0f s", delay)
                else:
                    log.warning("worker pass failed again (%d in a row); retrying in %.0f s", backoff.failures, delay)
            if once or wait(delay):
                return
    finally:
        jobs_stop.set()
        if job_thread is not None:
            # A job still running after this is abandoned mid-way; its lease runs out and it resumes elsewhere.
            job_thread.join(timeout=10)
        # Providers hold threads and connections (the embedded SMS simulator, SMTP pools): close them here,
        # or interpreter shutdown tears them down mid-flight and `herald worker --once` ends in a traceback.
        close_delivery(runtime)
        if not once and not jobs_only:
            _forget(runtime, name)


def _forget(runtime: Runtime, name: str) -> None:
    try:
        heartbeat.stopped(runtime, name)
    except Exception:
        # The row goes stale by itself after heartbeat.FRESH_FOR; a failed cleanup must not mask the exit.
        log.warning("could not remove worker heartbeat %s", name, exc_info=True)
