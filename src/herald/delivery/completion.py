"""Mapping outcomes, in one transaction: each job's result as a fenced ledger change, then events and suppression."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from herald.channels.base import RateLimited
from herald.db.delivery_tables import messages
from herald.db.event_log import append_event
from herald.delivery import breaker, ledger, outcomes
from herald.delivery.decide import marks_reader
from herald.delivery.failover import Decision, after_attempt
from herald.delivery.send_jobs import Job, changed, done

if TYPE_CHECKING:
    from herald.delivery.worker import Deliverer

log = logging.getLogger("herald.delivery.worker")
# Which completions took effect: compiled once, an expanding IN for the group's ids.
_CURRENT = sa.select(messages.c.id, messages.c.lease_token, messages.c.status).where(
    messages.c.id.in_(sa.bindparam("ids", expanding=True))
)


def finish(d: Deliverer, conn: sa.Connection, jobs: Sequence[Job], now: dt.datetime) -> None:
    completions = []
    # The breakers as last read (at most a second ago): a success on a quiet breaker writes nothing.
    health = d.health.current(conn, {job.provider.name for job in jobs if job.kind == "send" and not job.late})
    for job in jobs:
        if job.kind == "reconcile":
            completions.append(_after_reconcile(d, job, now))
        else:
            completions.append(_after_send(d, conn, job, now, health))
    applied = ledger.complete(conn, completions, now)
    _report(d, conn, jobs, completions, now, every_row_changed=applied == len(completions))


def _report(
    d: Deliverer,
    conn: sa.Connection,
    jobs: Sequence[Job],
    completions: Sequence[ledger.Completion],
    now: dt.datetime,
    *,
    every_row_changed: bool,
) -> None:
    """Event log and suppression for the completions that took effect (a stale one reports nothing)."""
    if every_row_changed:
        # Every fenced update matched its row: each row now holds what its completion wrote.
        current = {c.message_id: (c.token, c.values["status"]) for c in completions}
    else:
        ids = [c.message_id for c in completions]
        current = {r.id: (r.lease_token, r.status) for r in conn.execute(_CURRENT, {"ids": ids})}
    sent: list[dict[str, Any]] = []
    for job, completed in zip(jobs, completions, strict=True):
        if job.late or current.get(completed.message_id) != (completed.token, completed.values["status"]):
            continue
        row, channel = job.claim.row, job.attempt["channel"]
        person_id, message_id = int(row["person_id"]), int(row["id"])
        if completed.values["status"] == "sent":
            data = {"provider": job.provider.name, "reference": job.attempt["reference"]}
            sent.append({"person_id": person_id, "channel": channel, "message_id": message_id, "data": data})
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
                soft_bounce_limit=d.delivery.soft_bounce_limit,
                now=now,
            )
        if completed.values["status"] == "failed":
            data = {"reason": completed.values.get("last_error")}
            append_event(conn, "failed", at=now, person_id=person_id, channel=channel, message_id=message_id, data=data)
    outcomes.record_sent_many(conn, sent, now)


def _after_send(
    d: Deliverer, conn: sa.Connection, job: Job, now: dt.datetime, health: dict[str, dict[str, Any]]
) -> ledger.Completion:
    row, attempt, error = job.claim.row, job.attempt, job.error
    if job.late:
        return _late(job, now)
    assert job.outcome is not None
    if job.outcome == "sent":
        assert job.receipt is not None
        breaker.record_success(conn, job.provider.name, now, health.get(job.provider.name))
        pid = job.receipt.provider_message_id
        return done(
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
        breaker.record_failure(conn, job.provider.name, detail, now, d.breaker, health.get(job.provider.name))
    if job.outcome == "unknown":
        wait = d.delivery.reconcile_delay_seconds
        note = "outcome_unknown"
        marks = marks_reader(d, job.provider)
        # This worker just ran the attempt, so its own (readable) file answers.
        if marks is not None and marks.verdict(d.worker_id, attempt["reference"]) == "unmarked":
            # Cut off (a timeout) before its final dot: nothing the relay could keep, so the next claim sends
            # the same attempt again after the short delay instead of waiting out the deadline.
            note = "outcome_unknown:before_final_dot"
        elif not d.can_reconcile(job.provider):
            wait = d.delivery.unknown_deadline_seconds
        values = {"status": "unknown", "error": detail, "note": note}
        return done(
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
        policy=d.retry,
        rng=d.rng,
        retry_after=retry_after,
    )
    attempt_status = "rejected" if job.outcome == "rejected" else "retry"
    attempt_values = {"status": attempt_status, "error": detail, "error_code": error.code, "finished_at": now}
    return _decided(job.claim, decision, attempt["id"], attempt_values, detail, now)


def _after_reconcile(d: Deliverer, job: Job, now: dt.datetime) -> ledger.Completion:
    found, attempt = job.reconciled, job.attempt
    assert found is not None
    note = f"reconciled:{found.verdict}"
    if found.verdict != "pending":
        log.info("attempt %s (%s): %s, %s", attempt["reference"], job.origin, note, found.detail)
    age = now - attempt["started_at"]
    expired = age >= dt.timedelta(seconds=d.delivery.unknown_deadline_seconds)
    if found.verdict == "pending":
        assert found.retry_at is not None
        retry_at, said = max(now, found.retry_at), note
    else:
        retry_at = now + dt.timedelta(seconds=max(1.0, d.delivery.reconcile_delay_seconds))
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
        return changed(job.claim, change)
    return changed(job.claim, change, attempt["id"], {**attempt_values, "finished_at": now}, **extra)


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
    return changed(claimed, change, attempt_id, attempt_values)


def _late(job: Job, now: dt.datetime) -> ledger.Completion:
    """A send that never started: give the row back now. A new attempt is closed as not sent; a re-submission
    stays `submitting`, so the next claim resumes it exactly as it would have."""
    if job.origin != "new":
        return done(job.claim, "retry_wait", available_at=now)
    values = {"status": "retry", "note": "not_sent:lease_half_spent", "finished_at": now}
    return done(job.claim, "retry_wait", attempt_id=job.attempt["id"], attempt_values=values, available_at=now)
