"""Run claimed jobs: one kind per handler, progress checkpoints that renew the lease, resume or fail for good."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.core.errors import HeraldError, LeaseLostError
from herald.db.runtime import Runtime
from herald.delivery.heartbeat import worker_name
from herald.jobs import store
from herald.jobs.store import Claim

POLL_SECONDS = 0.5
log = logging.getLogger(__name__)


@dataclass
class JobRun:
    """What a handler gets: the runtime, its claim, and `checkpoint()` to report progress fenced."""

    runtime: Runtime
    claim: Claim
    lease: dt.timedelta

    @property
    def payload(self) -> dict[str, Any]:
        return self.claim.payload

    @property
    def resumed(self) -> bool:
        """True when an earlier run of this job was interrupted (its progress may be partly written)."""
        return self.claim.attempts > 1

    def checkpoint(self, conn: sa.Connection, done: int, total: int | None = None) -> None:
        """Record progress and renew the lease in the caller's transaction; raise if the job was taken over.

        Called inside the transaction that writes the work itself, so a stale worker's last chunk rolls
        back with the failed fence instead of being written twice.
        """
        now = self.runtime.clock.now()
        values: dict[str, Any] = {"progress_done": done, "lease_until": now + self.lease, "updated_at": now}
        if total is not None:
            values["progress_total"] = total
        if not store.fenced(conn, self.claim, values):
            raise LeaseLostError(f"Job {self.claim.id} was taken over by another worker.", id=self.claim.id)


Handler = Callable[[JobRun], Mapping[str, Any] | None]
# Called when a job fails for good without its handler having cleaned up (interrupted too often).
Abandon = Callable[[Runtime, dict[str, Any], HeraldError], None]


@dataclass(frozen=True)
class JobKind:
    name: str
    run: Handler
    abandon: Abandon | None = None


class JobKinds:
    """The handlers this process runs, registered explicitly; a second handler for one kind is an error."""

    def __init__(self, kinds: Iterable[JobKind] = ()) -> None:
        self._kinds: dict[str, JobKind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: JobKind) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"job kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> JobKind | None:
        return self._kinds.get(name)


class JobInterruptedError(HeraldError):
    """A job's workers kept dying before it finished; it is failed with this reason instead of retried again."""

    code = "job_interrupted"
    http_status = 500


def run_next_job(runtime: Runtime, kinds: JobKinds, *, worker: str | None = None) -> bool:
    """Claim and run one due job; False when there was none."""
    now = runtime.clock.now()
    if not store.has_due(runtime.engine, now):
        return False
    lease = dt.timedelta(seconds=runtime.settings.job_lease_seconds)
    with runtime.engine.begin() as conn:
        held = store.claim(conn, now=now, worker=worker or worker_name(), lease=lease)
    if held is None:
        return False  # another worker was quicker
    kind = kinds.get(held.kind)
    if kind is None:
        _finish(runtime, held, failed=HeraldError(f"No handler for jobs of kind {held.kind!r} in this worker."))
        return True
    if held.attempts > held.max_attempts:
        reason = JobInterruptedError(
            f"Interrupted {held.attempts - 1} times (its worker stopped before finishing); not tried again.",
            attempts=held.attempts - 1,
        )
        if _finish(runtime, held, failed=reason) and kind.abandon is not None:
            kind.abandon(runtime, held.payload, reason)
        return True
    if held.attempts > 1:
        log.warning("resuming job %s (%s), attempt %d", held.id, held.kind, held.attempts)
    try:
        result = kind.run(JobRun(runtime, held, lease))
    except LeaseLostError:
        log.warning("job %s was taken over by another worker; leaving it", held.id)
        return True
    except Exception as exc:
        log.exception("job %s (%s) failed", held.id, held.kind)
        _finish(runtime, held, failed=exc)
        return True
    _finish(runtime, held, result=result)
    return True


def _finish(
    runtime: Runtime, held: Claim, *, result: Mapping[str, Any] | None = None, failed: Exception | None = None
) -> bool:
    now = runtime.clock.now()
    values: dict[str, Any] = {"lease_until": None, "finished_at": now, "updated_at": now}
    if failed is None:
        values.update(status="done", result=dict(result or {}))
    else:
        code, message = (
            (failed.code, failed.message)
            if isinstance(failed, HeraldError)
            else ("job_failed", f"{type(failed).__name__}: {failed}")
        )
        values.update(status="failed", error_code=code, error=message[:2000])
    with runtime.engine.begin() as conn:
        return store.fenced(conn, held, values)


def run_queued_jobs(runtime: Runtime, kinds: JobKinds, *, limit: int = 10) -> int:
    """Run up to `limit` due jobs one after another; return how many ran."""
    ran = 0
    while ran < limit and run_next_job(runtime, kinds):
        ran += 1
    return ran


def run_jobs_until(runtime: Runtime, kinds: JobKinds, stop: threading.Event, *, poll: float = POLL_SECONDS) -> None:
    """The worker's job thread: long jobs (a large import) never hold up deliveries in the main loop."""
    while not stop.is_set():
        try:
            busy = run_next_job(runtime, kinds)
        except Exception:
            log.exception("job runner pass failed")
            busy = False
        if not busy and stop.wait(poll):
            return
