"""Walk a channel plan: pure decisions about the next channel, retries with backoff, and when to give up."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["sent", "rate_limited", "failure", "rejected", "unknown"]
Action = Literal["send", "retry", "advance", "failed", "wait"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 5  # transient failures on one channel before moving to the next
    base: dt.timedelta = dt.timedelta(seconds=2)
    cap: dt.timedelta = dt.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Block:
    """Why a channel cannot be used right now; `until` set means it may open again (a breaker)."""

    reason: str
    until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    """The channel to use now, or none; the skipped channels with their reasons, in plan order."""

    index: int | None
    skips: tuple[tuple[str, str], ...]
    wait_until: dt.datetime | None = None  # every remaining channel is blocked, one only for a while


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    plan_index: int
    retries: int
    available_at: dt.datetime
    reason: str = ""


def choose_channel(channels: Sequence[str], start: int, blocked: Mapping[str, Block]) -> ChannelChoice:
    """The first channel from `start` on that is not blocked.

    When every remaining one is blocked and some only temporarily (an open breaker), stay on the first
    temporarily blocked channel and wait for it rather than fail the message.
    """
    skips: list[tuple[str, str]] = []
    for index in range(start, len(channels)):
        block = blocked.get(channels[index])
        if block is None:
            return ChannelChoice(index, tuple(skips))
        skips.append((channels[index], block.reason))
    temporary = [(b.until, i) for i in range(start, len(channels)) if (b := blocked[channels[i]]).until is not None]
    if temporary:
        until, index = min(temporary)
        return ChannelChoice(None, tuple(skips[: index - start]), wait_until=until)
    return ChannelChoice(None, tuple(skips))


def backoff(retries: int, policy: RetryPolicy, rng: random.Random) -> dt.timedelta:
    """Exponential backoff with full jitter: uniform in [base, min(cap, base × 2^retries)]."""
    ceiling = min(policy.cap.total_seconds(), policy.base.total_seconds() * (2 ** min(retries, 30)))
    return dt.timedelta(seconds=rng.uniform(policy.base.total_seconds(), max(ceiling, policy.base.total_seconds())))


def after_attempt(
    outcome: Outcome,
    *,
    plan_index: int,
    channel_count: int,
    retries: int,
    now: dt.datetime,
    policy: RetryPolicy,
    rng: random.Random,
    retry_after: float | None = None,
) -> Decision:
    """What the plan does after one attempt on channel `plan_index`.

    - sent: done (receipts may still move it on).
    - rate_limited / failure: retry this channel after Retry-After (exactly, when given) or a jittered
      backoff, until max_retries; then move to the next channel.
    - rejected: this channel will never work for this message: next channel now.
    - unknown: never move on and never resend: reconcile first (failover on an unknown could deliver twice).
    """
    if outcome == "sent":
        return Decision("send", plan_index, retries, now, "sent")
    if outcome == "unknown":
        return Decision("wait", plan_index, retries, now, "outcome_unknown")
    if outcome == "rejected":
        return next_channel(plan_index, channel_count, now, "rejected")
    if retries + 1 > policy.max_retries:
        return next_channel(plan_index, channel_count, now, "retries_exhausted")
    if retry_after is not None and retry_after >= 0:
        delay = dt.timedelta(seconds=retry_after)
    else:
        delay = backoff(retries, policy, rng)
    return Decision("retry", plan_index, retries + 1, now + delay, outcome)


def next_channel(plan_index: int, channel_count: int, now: dt.datetime, reason: str) -> Decision:
    if plan_index + 1 < channel_count:
        return Decision("advance", plan_index + 1, 0, now, reason)
    return Decision("failed", plan_index, 0, now, f"plan_exhausted:{reason}")
