"""Sending, after the claim committed: at most `concurrency` in flight, the provider's rate, the lease's time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from herald.channels.base import DeliveryError, MessageRejected, OutcomeUnknown, RateLimited
from herald.delivery.completion import finish
from herald.delivery.reconcile import MessageIds, Reconciled, reconcile, reconcile_relay
from herald.delivery.send_jobs import Job

if TYPE_CHECKING:
    from herald.delivery.worker import Deliverer

log = logging.getLogger("herald.delivery.worker")
GROUP_LINGER_SECONDS = 0.01


async def execute(d: Deliverer, jobs: Sequence[Job], concurrency: int) -> None:
    """Send with at most `concurrency` in flight; commit outcomes in groups as they finish.

    Group commit keeps the window in which a crash leaves an accepted message unrecorded (the only
    source of duplicates) down to one commit, while still completing many rows per transaction.
    """
    gate = asyncio.Semaphore(max(1, concurrency))
    finished = _Finished(concurrency)
    limit = max(1.0, d.lease.total_seconds() / 2)

    async def run(job: Job) -> None:
        async with gate:
            try:
                if job.kind == "send":
                    # A declared rate limit: wait for this provider's token before the lease check, so
                    # a long wait makes the send late (given back) rather than risking the lease.
                    await d.throttle.acquire(job.provider)
                if job.kind == "send" and time.monotonic() > job.send_before:
                    job.late = True  # the lease is half spent: leave it to the next claim
                else:
                    async with asyncio.timeout(limit):
                        await _run_job(d, job)
            except TimeoutError:
                # The request may have left: an unknown outcome, never a blind retry.
                job.outcome, job.error = "unknown", OutcomeUnknown("attempt timed out", provider=job.provider.name)
        finished.put(job)

    tasks = [asyncio.create_task(run(job)) for job in jobs]
    try:
        done = 0
        while done < len(jobs):
            group = await finished.group(len(jobs) - done)
            # Off the event loop: sends go on while this group's transaction runs and its COMMIT waits for
            # the disk (PostgreSQL's WAL flush, SQLite's fsync). One group at a time, in order.
            await asyncio.to_thread(_complete, d, group)
            done += len(group)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _complete(d: Deliverer, group: list[Job]) -> None:
    with d.runtime.engine.begin() as conn:
        finish(d, conn, group, d.runtime.clock.now())


class _Finished:
    """Jobs whose send is over, handed to completion in groups: the first to finish, and whatever finishes
    within GROUP_LINGER_SECONDS after it — less if every send that can be in flight has finished.

    A transaction costs about as much as a dozen rows in it, so completing one or two rows at a time spent
    most of the worker's time on BEGIN/COMMIT. The loop keeps sending during the linger (one timer per
    group, no wake-up per arrival); it lengthens the crash window (accepted, not yet recorded) by at most
    the linger."""

    def __init__(self, full: int) -> None:
        self.full = max(1, full)
        self.want = self.full  # wake the linger early at this many (fewer at the end of a batch)
        self.jobs: list[Job] = []
        self._waiter: asyncio.Future[None] | None = None

    def put(self, job: Job) -> None:
        self.jobs.append(job)
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (len(self.jobs) == 1 or len(self.jobs) >= self.want):
            waiter.set_result(None)

    async def group(self, remaining: int) -> list[Job]:
        if not self.jobs:
            await self._wait(None)
        self.want = min(self.full, remaining)
        if len(self.jobs) < self.want:
            await self._wait(GROUP_LINGER_SECONDS)
        group, self.jobs = self.jobs, []
        return group

    async def _wait(self, timeout: float | None) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._waiter, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiter = None


async def _run_job(d: Deliverer, job: Job) -> None:
    if job.kind == "reconcile":
        job.reconciled = await _lookup(d, job)
        return
    try:
        job.receipt = await job.provider.send(job.message)
        job.outcome = "sent"
    except RateLimited as exc:
        job.outcome, job.error = "rate_limited", exc
    except MessageRejected as exc:
        job.outcome, job.error = "rejected", exc
    except OutcomeUnknown as exc:
        job.outcome, job.error = "unknown", exc
    except DeliveryError as exc:
        job.outcome, job.error = "failure", exc
    except Exception as exc:
        log.exception("provider %s raised outside the delivery error tree", job.provider.name)
        job.outcome, job.error = "failure", DeliveryError(repr(exc), provider=job.provider.name)


async def _lookup(d: Deliverer, job: Job) -> Reconciled:
    started_at = job.attempt["started_at"]
    relay_log = d.relay_logs.get(job.provider.name)
    if relay_log is None:
        return await reconcile(job.provider, job.message, started_at)
    if not isinstance(job.provider, MessageIds):
        return Reconciled("lookup_failed", detail=f"{job.provider.name} cannot name its Message-IDs")
    return await reconcile_relay(
        relay_log,
        job.provider.message_id(job.message),
        started_at=started_at,
        # The attempt's claim was taken at started_at with this lease; its sends ended by the lease's end.
        sent_by=started_at + d.lease,
        now=d.runtime.clock.now(),
    )
