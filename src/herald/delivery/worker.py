"""The delivery pass: claim due rows, decide per row, send after commit, complete the batch fenced."""

from __future__ import annotations

import datetime as dt
import functools
import os
import random
import secrets
import socket
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from herald.channels.base import ChannelProvider
from herald.channels.registry import ChannelRegistry
from herald.db.runtime import Runtime
from herald.delivery import breaker, ledger
from herald.delivery.decide import prepare, quiet_policy
from herald.delivery.execute import Pipeline, execute
from herald.delivery.failover import RetryPolicy
from herald.delivery.reconcile import AcceptanceLog, can_reconcile
from herald.delivery.render_at_claim import TemplateCache
from herald.delivery.send_jobs import Job, rendered_message
from herald.delivery.settings import DeliverySettings, delivery_settings
from herald.delivery.throttle import Throttle

# Kept importable from here: the worker loop, the service and tests use these names.
__all__ = ["Deliverer", "Job", "close_delivery", "quiet_policy", "rendered_message", "run_delivery_pass"]


def new_worker_id() -> str:
    """host:pid:random — unique per Deliverer; the host part says whose wire marks are local (wire_marks.py)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Deliverer:
    """Runs delivery passes for one runtime with one set of providers; any number may run on any machines.

    It holds the policies; the steps live in their own modules: `decide` (in the claim transaction),
    `execute` (after commit), `completion` (outcomes back onto the ledger), `runner` (the process)."""

    def __init__(
        self,
        runtime: Runtime,
        registry: ChannelRegistry,
        delivery: DeliverySettings | None = None,
        *,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        relay_logs: Mapping[str, AcceptanceLog] | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.runtime = runtime
        self.throttle = throttle or Throttle()
        self.registry = registry
        self.relay_logs = dict(relay_logs or {})
        self.delivery = delivery or delivery_settings(runtime)
        self.worker_id = worker_id or new_worker_id()
        self.rng = rng or random.Random()
        self.retry = RetryPolicy(
            max_retries=self.delivery.delivery_max_retries,
            base=dt.timedelta(seconds=self.delivery.delivery_backoff_base_seconds),
            cap=dt.timedelta(seconds=self.delivery.delivery_backoff_max_seconds),
        )
        self.breaker = breaker.BreakerPolicy(
            threshold=self.delivery.breaker_threshold,
            cooldown=dt.timedelta(seconds=self.delivery.breaker_cooldown_seconds),
            probe_lease=dt.timedelta(seconds=self.delivery.delivery_lease_seconds),
        )
        self.quiet = quiet_policy(self.delivery, runtime.settings.default_region)
        self.lease = dt.timedelta(seconds=self.delivery.delivery_lease_seconds)
        self.health = breaker.Snapshot()  # breaker rows: read per claimed batch, at most a second old
        self.templates = TemplateCache()  # compiled template versions for rows rendered at claim time

    # --- the pass ------------------------------------------------------------------------------------

    async def run_pass(self, *, concurrency: int = 1, max_seconds: float | None = None) -> int:
        """Claim and deliver batches until nothing is due or the time budget is used; returns rows handled.

        The next batch is claimed while the current one is still sending, once no more than half a batch
        waits to start, so the sends never stop for a claim. A batch claimed ahead waits at most about
        one batch's sending time; its jobs keep the lease rule of every job (none starts after half the
        lease, `Job.send_before`), and a worker killed before sending them left only `submitting` attempts
        with no wire mark, which the next claim re-sends (decide._resume)."""
        budget = self.delivery.delivery_pass_seconds if max_seconds is None else max_seconds
        deadline = time.monotonic() + budget
        handled = 0
        limit = self.delivery.delivery_batch_size
        ahead = max(2 * concurrency, limit // 2)
        with ThreadPoolExecutor(1, thread_name_prefix="herald-delivery-db") as db:
            pipeline = Pipeline(self, concurrency, db)
            try:
                while True:
                    try:
                        count, jobs = await pipeline.run_db(functools.partial(self._claim, limit))
                    except BaseException:
                        await pipeline.drain()  # what is already claimed is still sent and completed
                        raise
                    handled += count
                    pipeline.feed(jobs)
                    if count < limit or time.monotonic() >= deadline:
                        break
                    await pipeline.below(ahead)
                    if pipeline.failed:
                        break
                await pipeline.drain()
            finally:
                await pipeline.close()
        return handled

    async def run_batch(self, *, limit: int, concurrency: int = 1) -> int:
        """Claim one batch and deliver it (no claim ahead)."""
        count, jobs = self._claim(limit)
        # Committed: every attempt about to go out is durably recorded as `submitting` first.
        await execute(self, jobs, concurrency)
        return count

    def _claim(self, limit: int) -> tuple[int, list[Job]]:
        """One claim transaction: rows claimed, and the jobs to run once it has committed."""
        now = self.runtime.clock.now()
        send_before = time.monotonic() + self.lease.total_seconds() / 2
        with self.runtime.engine.begin() as conn:
            claims = ledger.claim(conn, now=now, worker=self.worker_id, lease=self.lease, limit=limit)
            if not claims:
                return 0, []
            batch = prepare(self, conn, claims, now)
            ledger.complete(conn, batch.now_done, now)
        for job in batch.jobs:
            job.send_before = send_before
        return len(claims), batch.jobs

    def can_reconcile(self, provider: ChannelProvider) -> bool:
        return can_reconcile(provider, self.relay_logs.get(provider.name))


def run_delivery_pass(runtime: Runtime, *, concurrency: int = 1) -> int:
    """One drain of due deliveries for this runtime (the worker loop's entry point; see runner.py)."""
    from herald.delivery import runner  # the runner builds Deliverers: imported late to keep one direction

    return runner.run_delivery_pass(runtime, concurrency=concurrency)


def close_delivery(runtime: Runtime) -> None:
    from herald.delivery import runner

    runner.close_delivery(runtime)
