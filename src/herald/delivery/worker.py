"""The delivery pass: claim due rows, decide per row, send after commit, complete the batch fenced."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from herald.channels.base import (
    Channel,
    ChannelProvider,
    DeliveryError,
    EmailContent,
    MessageRejected,
    OutcomeUnknown,
    RateLimited,
    Receipt,
    RenderedMessage,
)
from herald.channels.registry import ChannelRegistry
from herald.consent.ledger import load_events
from herald.consent.policy import CHANNELS as CONSENT_CHANNELS
from herald.consent.policy import ConsentEvent, suppression_reason
from herald.db.delivery_tables import messages
from herald.db.event_log import append_event
from herald.db.runtime import Runtime
from herald.delivery import breaker, ledger, outcomes
from herald.delivery.bootstrap import Providers, build_registry
from herald.delivery.failover import Block, Decision, Outcome, RetryPolicy, after_attempt, choose_channel
from herald.delivery.planner import consent_purpose, keep_zones_loaded
from herald.delivery.reconcile import AcceptanceLog, MessageIds, Reconciled, can_reconcile, reconcile, reconcile_relay
from herald.delivery.settings import DeliverySettings, load_delivery_settings
from herald.delivery.throttle import Throttle
from herald.schedule.quiet_hours import (
    QuietHoursApplied,
    QuietHoursPolicy,
    WeeklyWindows,
    decide_send_time,
    describe_decision,
)

log = logging.getLogger(__name__)


def quiet_policy(delivery: DeliverySettings, default_country: str | None) -> QuietHoursPolicy:
    return QuietHoursPolicy(
        default=WeeklyWindows.every_day(delivery.quiet_start, delivery.quiet_end),
        exempt_transactional=delivery.quiet_exempt_transactional,
        exempt_incident=delivery.quiet_exempt_incident,
        default_country=default_country,
    )


def rendered_message(row: Mapping[str, Any], channel: str, reference: str) -> RenderedMessage:
    """The attempt's wire content, from what the planner rendered and stored on the row."""
    to = row["addresses"][channel]
    parts = row["content"].get(channel, {})
    metadata: dict[str, str] = {"message_id": str(row["id"])}
    if channel == "email":
        email = EmailContent(subject=parts["subject"], text=parts.get("text") or "", html=parts.get("html"))
        return RenderedMessage(reference=reference, channel=Channel.EMAIL, to=to, email=email, metadata=metadata)
    if channel == "webhook":
        body = json.dumps(parts["payload"], separators=(",", ":"), sort_keys=True)
        return RenderedMessage(reference=reference, channel=Channel.WEBHOOK, to=to, body=body, metadata=metadata)
    body = parts.get("text") if channel == "voice" else parts.get("body")
    return RenderedMessage(reference=reference, channel=Channel(channel), to=to, body=body, metadata=metadata)


@dataclass
class Job:
    kind: Literal["send", "reconcile"]
    claim: ledger.Claim
    provider: ChannelProvider
    attempt: dict[str, Any]
    message: RenderedMessage
    origin: str = "new"  # new | crashed (adopted from a dead worker) | unknown
    outcome: Outcome | None = None
    receipt: Receipt | None = None
    error: DeliveryError | None = None
    reconciled: Reconciled | None = None
    # A send must start within the first half of the claim's lease (monotonic clock) and is cut off after
    # the second half: every byte it writes has left before the lease ends and another worker may take over.
    send_before: float = float("inf")
    late: bool = False  # not started in time: nothing was sent


@dataclass
class _Batch:
    """What one claim transaction decided: jobs to run after commit, completions to apply now."""

    jobs: list[Job] = field(default_factory=list)
    now_done: list[ledger.Completion] = field(default_factory=list)


class Deliverer:
    """Runs delivery passes for one runtime with one set of providers; any number may run on any machines."""

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
        self.delivery = delivery or load_delivery_settings()
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
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

    # --- the pass ------------------------------------------------------------------------------------

    async def run_pass(self, *, concurrency: int = 1, max_seconds: float | None = None) -> int:
        """Claim and deliver batches until nothing is due or the time budget is used; returns rows handled."""
        budget = self.delivery.delivery_pass_seconds if max_seconds is None else max_seconds
        deadline = time.monotonic() + budget
        handled = 0
        limit = self.delivery.delivery_batch_size
        while True:
            count = await self.run_batch(limit=limit, concurrency=concurrency)
            handled += count
            if count < limit or time.monotonic() >= deadline:
                return handled

    async def run_batch(self, *, limit: int, concurrency: int = 1) -> int:
        now = self.runtime.clock.now()
        send_before = time.monotonic() + self.lease.total_seconds() / 2
        with self.runtime.engine.begin() as conn:
            claims = ledger.claim(conn, now=now, worker=self.worker_id, lease=self.lease, limit=limit)
            if not claims:
                return 0
            batch = self._prepare(conn, claims, now)
            ledger.complete(conn, batch.now_done, now)
        for job in batch.jobs:
            job.send_before = send_before
        # Committed: every attempt about to go out is durably recorded as `submitting` first.
        await self._execute(batch.jobs, concurrency)
        return len(claims)

    # --- deciding, inside the claim transaction ------------------------------------------------------

    def _prepare(self, conn: sa.Connection, claims: Sequence[ledger.Claim], now: dt.datetime) -> _Batch:
        batch = _Batch()
        events = load_events(conn, {c.row["person_id"] for c in claims})
        health = breaker.states(conn, self.registry.names())
        for claimed in claims:
            attempt = claimed.attempt
            if attempt is not None and attempt["status"] in ("submitting", "unknown"):
                self._resume(conn, claimed, attempt, now, batch)
            else:
                self._start(conn, claimed, events[claimed.row["person_id"]], health, now, batch)
        return batch

    def _resume(
        self, conn: sa.Connection, claimed: ledger.Claim, attempt: Mapping[str, Any], now: dt.datetime, batch: _Batch
    ) -> None:
        """A row whose last attempt has no known outcome: look it up, wait, or re-submit the same attempt."""
        row = claimed.row
        provider = self.registry.get(attempt["provider"]) if attempt["provider"] in self.registry else None
        if provider is None:
            batch.now_done.append(_done(claimed, "unknown", available_at=now + self.lease, last_error="no provider"))
            return
        message = rendered_message(row, attempt["channel"], attempt["reference"])
        origin = "unknown" if attempt["status"] == "unknown" else "crashed"
        if self._can_reconcile(provider):
            ledger.take_over_attempt(conn, claimed, attempt["id"], now, resubmit=False)
            adopted = {**attempt, "lease_token": claimed.token}
            batch.jobs.append(Job("reconcile", claimed, provider, adopted, message, origin))
            return
        if origin == "unknown":
            # No way to ask (SMTP): the message may be sitting in the relay's queue. Never send it twice;
            # after the deadline with no bounce, count it as sent (docs/delivery.md).
            deadline = attempt["started_at"] + dt.timedelta(seconds=self.delivery.unknown_deadline_seconds)
            if now < deadline:
                batch.now_done.append(_done(claimed, "unknown", available_at=deadline))
            else:
                ledger.take_over_attempt(conn, claimed, attempt["id"], now, resubmit=False)
                batch.now_done.append(
                    _done(
                        claimed,
                        "sent",
                        attempt_id=attempt["id"],
                        attempt_values={"status": "sent", "note": "assumed_sent_after_deadline", "finished_at": now},
                        sent_at=now,
                        provider=attempt["provider"],
                    )
                )
            return
        # A worker died between recording the attempt and recording its outcome, and neither this provider
        # nor a relay log can be asked (no HERALD_SMTP_RECONCILE_LOG). Re-submit the *same* attempt: the same
        # reference, so the same Message-ID (or webhook-id) — a retransmission receivers can recognise, as an
        # MTA does after a lost ack.
        ledger.take_over_attempt(conn, claimed, attempt["id"], now, resubmit=True)
        log.warning(
            "re-submitting attempt %s of message %s after a worker crash (earlier outcome unknown)",
            attempt["reference"],
            row["id"],
        )
        batch.jobs.append(Job("send", claimed, provider, {**attempt, "lease_token": claimed.token}, message, origin))

    def _start(
        self,
        conn: sa.Connection,
        claimed: ledger.Claim,
        events: Sequence[ConsentEvent],
        health: dict[str, dict[str, Any]],
        now: dt.datetime,
        batch: _Batch,
    ) -> None:
        row = claimed.row
        keep_zones_loaded(row["zones"], self.quiet)
        decision = decide_send_time(now, row["zones"], self.quiet, row["message_class"])
        if decision.send_at is None or decision.send_at > now:
            # Quiet hours are checked again at send time: a retry or a late release may fall outside them.
            applied = describe_decision(decision, row["zones"], row["zone_source"], self.quiet, row["message_class"])
            batch.now_done.append(_quiet_hold(claimed, decision.send_at, decision.reason, applied))
            return
        channels: list[str] = list(row["channels"])
        blocked: dict[str, Block] = {}
        for channel in channels[row["plan_index"] :]:
            block = self._block(conn, channel, row, events, health, now)
            if block is None:
                break
            blocked[channel] = block
        choice = choose_channel(channels, row["plan_index"], blocked)
        skips = [*row["skips"], *({"channel": c, "reason": r, "at": now.isoformat()} for c, r in choice.skips)]
        if choice.index is None:
            batch.now_done.append(_no_channel(claimed, choice.wait_until, skips, [r for _, r in choice.skips], now))
            return
        channel = channels[choice.index]
        provider = self.registry.for_channel(Channel(channel))[0]
        extra: dict[str, Any] = {"plan_index": choice.index, "skips": skips, "hold_reason": None, "releasable": False}
        if choice.index != row["plan_index"]:
            extra["retries"] = 0
        attempt = ledger.start_attempt(conn, claimed, channel=channel, provider=provider.name, now=now, extra=extra)
        message = rendered_message(row, channel, attempt["reference"])
        updated = ledger.Claim(claimed.id, claimed.token, {**row, **extra}, attempt)
        batch.jobs.append(Job("send", updated, provider, attempt, message))

    def _block(
        self,
        conn: sa.Connection,
        channel: str,
        row: Mapping[str, Any],
        events: Sequence[ConsentEvent],
        health: dict[str, dict[str, Any]],
        now: dt.datetime,
    ) -> Block | None:
        if channel in CONSENT_CHANNELS:
            refused = suppression_reason(events, channel, consent_purpose(row["message_class"]))
            if refused is not None:
                return Block(refused)
        found = self.registry.for_channel(Channel(channel))
        if not found:
            return Block("no_provider")
        name = found[0].name
        state = health.setdefault(name, {"provider": name, "state": breaker.CLOSED, "failures": 0})
        until = breaker.admit(conn, name, state, now, self.breaker)
        return None if until is None else Block(f"breaker_open:{name}", until)

    # --- sending, after commit -----------------------------------------------------------------------

    async def _execute(self, jobs: Sequence[Job], concurrency: int) -> None:
        """Send with at most `concurrency` in flight; commit outcomes in groups as they finish.

        Group commit keeps the window in which a crash leaves an accepted message unrecorded (the only
        source of duplicates) down to one commit, while still completing many rows per transaction.
        """
        gate = asyncio.Semaphore(max(1, concurrency))
        finished: asyncio.Queue[Job] = asyncio.Queue()
        limit = max(1.0, self.lease.total_seconds() / 2)

        async def run(job: Job) -> None:
            async with gate:
                try:
                    if job.kind == "send":
                        # A declared rate limit: wait for this provider's token before the lease check, so
                        # a long wait makes the send late (given back) rather than risking the lease.
                        await self.throttle.acquire(job.provider)
                    if job.kind == "send" and time.monotonic() > job.send_before:
                        job.late = True  # the lease is half spent: leave it to the next claim
                    else:
                        async with asyncio.timeout(limit):
                            await self._run_job(job)
                except TimeoutError:
                    # The request may have left: an unknown outcome, never a blind retry.
                    job.outcome, job.error = "unknown", OutcomeUnknown("attempt timed out", provider=job.provider.name)
            finished.put_nowait(job)

        tasks = [asyncio.create_task(run(job)) for job in jobs]
        try:
            done = 0
            while done < len(jobs):
                group = [await finished.get()]
                while not finished.empty():
                    group.append(finished.get_nowait())
                with self.runtime.engine.begin() as conn:
                    self._finish(conn, group, self.runtime.clock.now())
                done += len(group)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _can_reconcile(self, provider: ChannelProvider) -> bool:
        return can_reconcile(provider, self.relay_logs.get(provider.name))

    async def _run_job(self, job: Job) -> None:
        if job.kind == "reconcile":
            job.reconciled = await self._reconcile(job)
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

    async def _reconcile(self, job: Job) -> Reconciled:
        started_at = job.attempt["started_at"]
        relay_log = self.relay_logs.get(job.provider.name)
        if relay_log is None:
            return await reconcile(job.provider, job.message, started_at)
        if not isinstance(job.provider, MessageIds):
            return Reconciled("lookup_failed", detail=f"{job.provider.name} cannot name its Message-IDs")
        return await reconcile_relay(
            relay_log,
            job.provider.message_id(job.message),
            started_at=started_at,
            # The attempt's claim was taken at started_at with this lease; its sends ended by the lease's end.
            sent_by=started_at + self.lease,
            now=self.runtime.clock.now(),
        )

    # --- completing, in one transaction --------------------------------------------------------------

    def _finish(self, conn: sa.Connection, jobs: Sequence[Job], now: dt.datetime) -> None:
        completions = []
        for job in jobs:
            if job.kind == "reconcile":
                completions.append(self._after_reconcile(job, now))
            else:
                completions.append(self._after_send(conn, job, now))
        ledger.complete(conn, completions, now)
        self._report(conn, jobs, completions, now)

    def _report(
        self, conn: sa.Connection, jobs: Sequence[Job], completions: Sequence[ledger.Completion], now: dt.datetime
    ) -> None:
        """Event log and suppression for the completions that took effect (a stale one reports nothing)."""
        ids = [c.message_id for c in completions]
        current = {
            r.id: (r.lease_token, r.status)
            for r in conn.execute(
                sa.select(messages.c.id, messages.c.lease_token, messages.c.status).where(messages.c.id.in_(ids))
            )
        }
        for job, done in zip(jobs, completions, strict=True):
            if job.late or current.get(done.message_id) != (done.token, done.values["status"]):
                continue
            row, channel = job.claim.row, job.attempt["channel"]
            person_id, message_id = int(row["person_id"]), int(row["id"])
            if done.values["status"] == "sent":
                data = {"provider": job.provider.name, "reference": job.attempt["reference"]}
                outcomes.record_sent(
                    conn, person_id=person_id, channel=channel, message_id=message_id, data=data, now=now
                )
            found = job.error.outcome if job.error is not None else None
            if found is not None:
                outcomes.record_outcome(
                    conn,
                    found,
                    person_id=person_id,
                    channel=channel,
                    address=row["addresses"].get(channel),
                    message_id=message_id,
                    provider=job.provider.name,
                    reference=job.attempt["reference"],
                    soft_bounce_limit=self.delivery.soft_bounce_limit,
                    now=now,
                )
            if done.values["status"] == "failed":
                data = {"reason": done.values.get("last_error")}
                append_event(
                    conn, "failed", at=now, person_id=person_id, channel=channel, message_id=message_id, data=data
                )

    def _after_send(self, conn: sa.Connection, job: Job, now: dt.datetime) -> ledger.Completion:
        row, attempt, error = job.claim.row, job.attempt, job.error
        if job.late:
            return _late(job, now)
        assert job.outcome is not None
        if job.outcome == "sent":
            assert job.receipt is not None
            breaker.record_success(conn, job.provider.name, now)
            pid = job.receipt.provider_message_id
            return _done(
                job.claim,
                "sent",
                attempt_id=attempt["id"],
                attempt_values={"status": "sent", "provider_message_id": pid, "finished_at": now},
                sent_at=now,
                provider=job.provider.name,
                provider_message_id=pid,
                last_error=None,
            )
        assert error is not None
        detail = f"{type(error).__name__}: {error}"[:2000]
        if job.outcome == "failure":
            breaker.record_failure(conn, job.provider.name, detail, now, self.breaker)
        if job.outcome == "unknown":
            wait = self.delivery.reconcile_delay_seconds
            if not self._can_reconcile(job.provider):
                wait = self.delivery.unknown_deadline_seconds
            values = {"status": "unknown", "error": detail, "note": "outcome_unknown"}
            return _done(
                job.claim,
                "unknown",
                attempt_id=attempt["id"],
                attempt_values=values,
                available_at=now + dt.timedelta(seconds=wait),
                last_error=detail,
            )
        retry_after = error.retry_after if isinstance(error, RateLimited) else None
        decision = after_attempt(
            job.outcome,
            plan_index=row["plan_index"],
            channel_count=len(row["channels"]),
            retries=row["retries"],
            now=now,
            policy=self.retry,
            rng=self.rng,
            retry_after=retry_after,
        )
        attempt_status = "rejected" if job.outcome == "rejected" else "retry"
        attempt_values = {"status": attempt_status, "error": detail, "error_code": error.code, "finished_at": now}
        return _decided(job.claim, decision, attempt["id"], attempt_values, detail, now)

    def _after_reconcile(self, job: Job, now: dt.datetime) -> ledger.Completion:
        found, attempt = job.reconciled, job.attempt
        assert found is not None
        note = f"reconciled:{found.verdict}"
        if found.verdict != "pending":
            log.info("attempt %s (%s): %s, %s", attempt["reference"], job.origin, note, found.detail)
        age = now - attempt["started_at"]
        expired = age >= dt.timedelta(seconds=self.delivery.unknown_deadline_seconds)
        if found.verdict == "pending":
            assert found.retry_at is not None
            retry_at, said = max(now, found.retry_at), note
        else:
            retry_at = now + dt.timedelta(seconds=max(1.0, self.delivery.reconcile_delay_seconds))
            said = note + " " + found.detail
        change = ledger.reconcile(
            ledger.LedgerRow.of(job.claim.row),
            job.claim.token,
            found.verdict,
            now=now,
            retry_at=retry_at,
            # Nothing was created: the request never reached the provider, so a new attempt is safe.
            may_resubmit=job.origin == "crashed" or expired,
            note=said if found.verdict not in ("dead",) else note,
            reason=f"provider_status:{found.status}",
        )
        assert change is not None  # the claim's own row, still held
        attempt_values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if change.status is ledger.Status.SENT:
            attempt_values = {"status": "sent", "provider_message_id": found.provider_message_id, "note": note}
            extra = {"sent_at": now, "provider": job.provider.name, "provider_message_id": found.provider_message_id}
        elif found.verdict == "dead":
            attempt_values = {"status": "failed", "provider_message_id": found.provider_message_id, "note": note}
        elif change.status is ledger.Status.RETRY_WAIT:
            # The relay's own record (or the provider's) says it never took this attempt.
            attempt_values = {"status": "retry", "note": note}
        if not attempt_values:
            return _changed(job.claim, change)
        return _changed(job.claim, change, attempt["id"], {**attempt_values, "finished_at": now}, **extra)


def _changed(
    claimed: ledger.Claim,
    change: ledger.Change,
    attempt_id: int | None = None,
    attempt_values: Mapping[str, Any] | None = None,
    **extra: Any,
) -> ledger.Completion:
    """A transition's change as the fenced completion the ledger applies."""
    values = {**change.row_values(), **extra}
    return ledger.Completion(claimed.id, claimed.token, values, attempt_id, attempt_values or {})


def _done(
    claimed: ledger.Claim,
    status: str,
    *,
    attempt_id: int | None = None,
    attempt_values: Mapping[str, Any] | None = None,
    **values: Any,
) -> ledger.Completion:
    return ledger.Completion(claimed.id, claimed.token, {"status": status, **values}, attempt_id, attempt_values or {})


def _decided(
    claimed: ledger.Claim,
    decision: Decision,
    attempt_id: int,
    attempt_values: Mapping[str, Any],
    detail: str,
    now: dt.datetime,
) -> ledger.Completion:
    change = ledger.outcome(ledger.LedgerRow.of(claimed.row), claimed.token, decision, detail=detail, now=now)
    assert change is not None  # the claim's own row, still held
    return _changed(claimed, change, attempt_id, attempt_values)


def _late(job: Job, now: dt.datetime) -> ledger.Completion:
    """A send that never started: give the row back now. A new attempt is closed as not sent; a re-submission
    stays `submitting`, so the next claim resumes it exactly as it would have."""
    if job.origin != "new":
        return _done(job.claim, "retry_wait", available_at=now)
    values = {"status": "retry", "note": "not_sent:lease_half_spent", "finished_at": now}
    return _done(job.claim, "retry_wait", attempt_id=job.attempt["id"], attempt_values=values, available_at=now)


def _quiet_hold(
    claimed: ledger.Claim, send_at: dt.datetime | None, reason: str, applied: QuietHoursApplied
) -> ledger.Completion:
    # The row says which zone and window held it this time (the settings may have changed since planning).
    zone, window = applied.zone, applied.window
    if send_at is None:
        return _done(
            claimed, "held", hold_reason=f"quiet_hours:{reason}", releasable=False, quiet_zone=zone, quiet_window=window
        )
    return _done(
        claimed,
        "held",
        hold_reason="quiet_hours",
        releasable=True,
        available_at=send_at,
        quiet_zone=zone,
        quiet_window=window,
    )


def _no_channel(
    claimed: ledger.Claim,
    wait_until: dt.datetime | None,
    skips: list[dict[str, Any]],
    reasons: Sequence[str],
    now: dt.datetime,
) -> ledger.Completion:
    if wait_until is not None:
        return _done(claimed, "retry_wait", available_at=wait_until, last_error="every channel's breaker is open")
    if reasons and all(r.startswith("no_consent") for r in reasons):
        return _done(claimed, "held", hold_reason="no_consent", releasable=False, skips=skips)
    return _done(claimed, "failed", skips=skips, last_error="plan_exhausted:" + ",".join(reasons))


# --- the worker loop's entry point -------------------------------------------------------------------


class _Engine:
    """A Deliverer with its own event loop and providers, for the synchronous worker loop."""

    def __init__(self, runtime: Runtime, delivery: DeliverySettings, concurrency: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.providers: Providers = build_registry(runtime, delivery, concurrency=concurrency)
        self.deliverer = Deliverer(runtime, self.providers.registry, delivery, relay_logs=self.providers.relay_logs)

    def run(self, concurrency: int) -> int:
        return self.loop.run_until_complete(self.deliverer.run_pass(concurrency=concurrency))

    def close(self) -> None:
        self.loop.run_until_complete(self.providers.aclose())
        self.loop.close()


_engines: dict[int, tuple[Runtime, _Engine]] = {}
_engines_lock = threading.Lock()


def run_delivery_pass(runtime: Runtime, *, concurrency: int = 1) -> int:
    """One drain of due deliveries for this runtime (called by the worker loop); returns rows handled.

    Providers (and the embedded simulator) are only built once there is something to deliver.
    """
    with _engines_lock:
        entry = _engines.get(id(runtime))
        if entry is not None and entry[0] is not runtime:
            stale = _engines.pop(id(runtime))[1]
            stale.close()
            entry = None
        if entry is None:
            with runtime.engine.connect() as conn:
                if not ledger.anything_due(conn, runtime.clock.now()):
                    return 0
            entry = (runtime, _Engine(runtime, load_delivery_settings(), concurrency))
            _engines[id(runtime)] = entry
    return entry[1].run(concurrency)


def close_delivery(runtime: Runtime) -> None:
    with _engines_lock:
        entry = _engines.pop(id(runtime), None)
    if entry is not None:
        entry[1].close()
