"""Deciding, inside the claim transaction: quiet hours, consent and suppression, breakers, the channel to try."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from herald.channels.base import Channel, ChannelProvider, MarksFinalDot, RenderedMessage
from herald.consent.ledger import load_events
from herald.consent.policy import CHANNELS as CONSENT_CHANNELS
from herald.consent.policy import ConsentEvent, suppression_reason
from herald.delivery import breaker, ledger
from herald.delivery.failover import Block, choose_channel
from herald.delivery.planner import consent_purpose, keep_zones_loaded
from herald.delivery.render_at_claim import needs_render, render_row
from herald.delivery.send_jobs import Batch, Job, changed, done, rendered_message
from herald.delivery.settings import DeliverySettings
from herald.delivery.wire_marks import MarksReader, marks_root
from herald.schedule.quiet_hours import (
    QuietHoursApplied,
    QuietHoursPolicy,
    WeeklyWindows,
    decide_send_time,
    describe_decision,
)
from herald.templates.render import Held

if TYPE_CHECKING:
    from herald.delivery.worker import Deliverer

log = logging.getLogger("herald.delivery.worker")


def quiet_policy(delivery: DeliverySettings, default_country: str | None) -> QuietHoursPolicy:
    return QuietHoursPolicy(
        default=WeeklyWindows.every_day(delivery.quiet_start, delivery.quiet_end),
        exempt_transactional=delivery.quiet_exempt_transactional,
        exempt_incident=delivery.quiet_exempt_incident,
        default_country=default_country,
    )


def prepare(d: Deliverer, conn: sa.Connection, claims: Sequence[ledger.Claim], now: dt.datetime) -> Batch:
    batch = Batch()
    claims = _render_planned(d, conn, claims, batch)
    events = load_events(conn, {c.row["person_id"] for c in claims})
    health = d.health.store(breaker.states(conn, d.registry.names()))
    for claimed in claims:
        attempt = claimed.attempt
        if attempt is not None and attempt["status"] in ("submitting", "unknown", "resend"):
            _resume(d, conn, claimed, attempt, now, batch)
        elif attempt is not None and attempt["status"] in ledger.ACCEPTED_ATTEMPT:
            # A receipt said it was accepted before its worker recorded the outcome (and the worker died).
            provider = attempt["provider"]
            batch.now_done.append(done(claimed, "sent", sent_at=attempt["started_at"], provider=provider))
        else:
            _start(d, conn, claimed, events[claimed.row["person_id"]], health, now, batch)
    _open_attempts(conn, batch, now)
    return batch


def _open_attempts(conn: sa.Connection, batch: Batch, now: dt.datetime) -> None:
    """The batch's new attempts, recorded as `submitting` together (one bulk insert, fenced updates)."""
    starts, batch.starts = batch.starts, []
    attempts = ledger.start_attempts(conn, [new for new, _ in starts], now)
    for (new, provider), attempt in zip(starts, attempts, strict=True):
        row = {**new.claim.row, **new.extra}
        message = rendered_message(row, new.channel, attempt["reference"])
        updated = ledger.Claim(new.claim.id, new.claim.token, row, attempt)
        batch.jobs.append(Job("send", updated, provider, attempt, message))


def _render_planned(
    d: Deliverer, conn: sa.Connection, claims: Sequence[ledger.Claim], batch: Batch
) -> list[ledger.Claim]:
    """Rows a campaign planned with variables get their content now, from the template version; a render that
    holds (missing variable, leftover placeholder) holds the row instead of sending it."""
    ready: list[ledger.Claim] = []
    for claimed in claims:
        if not needs_render(claimed.row):
            ready.append(claimed)
            continue
        content = render_row(conn, claimed.row, d.templates)
        if isinstance(content, Held):
            batch.now_done.append(done(claimed, "held", hold_reason=content.reason[:300], releasable=False))
        else:
            ready.append(replace(claimed, row={**claimed.row, "content": content}))
    return ready


def _resume(
    d: Deliverer, conn: sa.Connection, claimed: ledger.Claim, attempt: Mapping[str, Any], now: dt.datetime, batch: Batch
) -> None:
    """A row whose last attempt has no known outcome: look it up, wait, settle it unconfirmed, or re-submit
    the same attempt."""
    row = claimed.row
    provider = d.registry.get(attempt["provider"]) if attempt["provider"] in d.registry else None
    if provider is None:
        batch.now_done.append(done(claimed, "unknown", available_at=now + d.lease, last_error="no provider"))
        return
    message = rendered_message(row, attempt["channel"], attempt["reference"])
    if attempt["status"] == "resend":
        # An operator asked for this sent_unconfirmed attempt again: same reference, so the same Message-ID.
        _resubmit(d, conn, claimed, attempt, provider, message, now, batch, why="an operator's re-send")
        return
    origin = "unknown" if attempt["status"] == "unknown" else "crashed"
    if d.can_reconcile(provider):
        ledger.take_over_attempt(conn, claimed, attempt["id"], now, resubmit=False)
        adopted = {**attempt, "lease_token": claimed.token}
        batch.jobs.append(Job("reconcile", claimed, provider, adopted, message, origin))
        return
    marks = marks_reader(d, provider)
    if origin == "unknown":
        if marks is not None and marks.verdict(attempt.get("worker"), attempt["reference"]) == "unmarked":
            # It timed out before its final dot (the mark precedes it, and the worker's file is readable):
            # the connection was closed mid-transaction, so the relay dropped it. Send it again now rather
            # than wait out the deadline and then call a message that never left "unconfirmed".
            _resubmit(d, conn, claimed, attempt, provider, message, now, batch, why="it stopped before its final dot")
            return
        # No way to ask (SMTP): the message may be sitting in the relay's queue. Never send it twice;
        # after the deadline with no bounce it is settled (docs/delivery.md).
        deadline = attempt["started_at"] + dt.timedelta(seconds=d.delivery.unknown_deadline_seconds)
        if now < deadline:
            batch.now_done.append(done(claimed, "unknown", available_at=deadline))
        elif marks is not None:
            # The final dot was written and the reply lost: as good as a mark.
            _unconfirmed(d, conn, claimed, attempt, provider, message, now, batch, "unconfirmed:reply_lost")
        else:
            ledger.take_over_attempt(conn, claimed, attempt["id"], now, resubmit=False)
            batch.now_done.append(
                done(
                    claimed,
                    "sent",
                    attempt_id=attempt["id"],
                    attempt_values={"status": "sent", "note": "assumed_sent_after_deadline", "finished_at": now},
                    sent_at=now,
                    provider=attempt["provider"],
                )
            )
        return
    if marks is not None:
        # A worker died between recording the attempt and recording its outcome. Its wire marks say whether
        # it wrote the final dot: no mark (on a readable file of this host) = the relay dropped the cut
        # transaction, so sending again is safe; a mark, or no way to read them, = almost surely accepted.
        verdict = marks.verdict(attempt.get("worker"), attempt["reference"])
        if verdict != "unmarked":
            reason = "unconfirmed:final_dot" if verdict == "marked" else "unconfirmed:marks_unreadable"
            _unconfirmed(d, conn, claimed, attempt, provider, message, now, batch, reason)
            return
        _resubmit(d, conn, claimed, attempt, provider, message, now, batch, why="its final dot never left")
        return
    # Neither this provider nor a relay log can be asked, and it leaves no wire marks (a webhook): re-submit
    # the *same* attempt — the same reference, so the same webhook-id — a retransmission receivers can
    # recognise, as an MTA does after a lost ack.
    _resubmit(d, conn, claimed, attempt, provider, message, now, batch, why="earlier outcome unknown")


def marks_reader(d: Deliverer, provider: ChannelProvider) -> MarksReader | None:
    """The wire marks' reader when this provider marks its final byte (SMTP with marks), else None."""
    if not isinstance(provider, MarksFinalDot) or provider.wire_marks is None:
        return None
    root = marks_root(d.runtime.settings.data_dir, d.delivery.wire_marks_dir)
    return d.runtime.part(MarksReader, lambda: MarksReader(root))


def _resubmit(
    d: Deliverer,
    conn: sa.Connection,
    claimed: ledger.Claim,
    attempt: Mapping[str, Any],
    provider: ChannelProvider,
    message: RenderedMessage,
    now: dt.datetime,
    batch: Batch,
    *,
    why: str,
) -> None:
    ledger.take_over_attempt(conn, claimed, attempt["id"], now, resubmit=True)
    log.warning("re-submitting attempt %s of message %s (%s)", attempt["reference"], claimed.row["id"], why)
    adopted = {**attempt, "lease_token": claimed.token, "status": "submitting"}
    batch.jobs.append(Job("send", claimed, provider, adopted, message, "crashed"))


def _unconfirmed(
    d: Deliverer,
    conn: sa.Connection,
    claimed: ledger.Claim,
    attempt: Mapping[str, Any],
    provider: ChannelProvider,
    message: RenderedMessage,
    now: dt.datetime,
    batch: Batch,
    reason: str,
) -> None:
    """Settle an attempt that may have been accepted as sent_unconfirmed — or, for transactional mail when
    HERALD_RESEND_UNCONFIRMED_TRANSACTIONAL is set, re-send it with the same Message-ID instead."""
    if d.delivery.resend_unconfirmed_transactional and claimed.row["message_class"] == "transactional":
        _resubmit(d, conn, claimed, attempt, provider, message, now, batch, why=f"{reason}, transactional")
        return
    change = ledger.unconfirmed(ledger.LedgerRow.of(claimed.row), claimed.token, reason=reason)
    assert change is not None  # the claim's own row, still held
    ledger.take_over_attempt(conn, claimed, attempt["id"], now, resubmit=False)
    log.warning(
        "attempt %s of message %s settled sent_unconfirmed (%s)", attempt["reference"], claimed.row["id"], reason
    )
    values = {"status": "sent_unconfirmed", "note": reason, "finished_at": now}
    batch.now_done.append(
        changed(claimed, change, attempt["id"], values, sent_at=attempt["started_at"], provider=attempt["provider"])
    )


def _start(
    d: Deliverer,
    conn: sa.Connection,
    claimed: ledger.Claim,
    events: Sequence[ConsentEvent],
    health: dict[str, dict[str, Any]],
    now: dt.datetime,
    batch: Batch,
) -> None:
    row = claimed.row
    keep_zones_loaded(row["zones"], d.quiet)
    decision = decide_send_time(now, row["zones"], d.quiet, row["message_class"])
    if decision.send_at is None or decision.send_at > now:
        # Quiet hours are checked again at send time: a retry or a late release may fall outside them.
        applied = describe_decision(decision, row["zones"], row["zone_source"], d.quiet, row["message_class"])
        batch.now_done.append(_quiet_hold(claimed, decision.send_at, decision.reason, applied))
        return
    channels: list[str] = list(row["channels"])
    blocked: dict[str, Block] = {}
    for channel in channels[row["plan_index"] :]:
        block = _block(d, conn, channel, row, events, health, now)
        if block is None:
            break
        blocked[channel] = block
    choice = choose_channel(channels, row["plan_index"], blocked)
    skips = [*row["skips"], *({"channel": c, "reason": r, "at": now.isoformat()} for c, r in choice.skips)]
    if choice.index is None:
        batch.now_done.append(_no_channel(claimed, choice.wait_until, skips, [r for _, r in choice.skips], now))
        return
    channel = channels[choice.index]
    provider = d.registry.for_channel(Channel(channel))[0]
    extra: dict[str, Any] = {"plan_index": choice.index, "skips": skips, "hold_reason": None, "releasable": False}
    if choice.index != row["plan_index"]:
        extra["retries"] = 0
    batch.starts.append((ledger.NewAttempt(claimed, channel, provider.name, extra), provider))


def _block(
    d: Deliverer,
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
    found = d.registry.for_channel(Channel(channel))
    if not found:
        return Block("no_provider")
    name = found[0].name
    state = health.setdefault(name, {"provider": name, "state": breaker.CLOSED, "failures": 0})
    until = breaker.admit(conn, name, state, now, d.breaker)
    return None if until is None else Block(f"breaker_open:{name}", until)


def _quiet_hold(
    claimed: ledger.Claim, send_at: dt.datetime | None, reason: str, applied: QuietHoursApplied
) -> ledger.Completion:
    # The row says which zone and window held it this time (the settings may have changed since planning).
    zone, window = applied.zone, applied.window
    if send_at is None:
        return done(
            claimed, "held", hold_reason=f"quiet_hours:{reason}", releasable=False, quiet_zone=zone, quiet_window=window
        )
    return done(
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
        return done(claimed, "retry_wait", available_at=wait_until, last_error="every channel's breaker is open")
    if reasons and all(r.startswith("no_consent") for r in reasons):
        return done(claimed, "held", hold_reason="no_consent", releasable=False, skips=skips)
    return done(claimed, "failed", skips=skips, last_error="plan_exhausted:" + ",".join(reasons))
