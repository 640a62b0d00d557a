"""Failover decisions: channel choice, retries with Retry-After and jittered backoff, never moving on an unknown."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from herald.delivery.failover import Block, RetryPolicy, after_attempt, backoff, choose_channel

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
POLICY = RetryPolicy(max_retries=3, base=dt.timedelta(seconds=2), cap=dt.timedelta(seconds=60))


def _after(outcome: str, *, index: int = 0, count: int = 3, retries: int = 0, retry_after: float | None = None):  # type: ignore[no-untyped-def]
    return after_attempt(
        outcome,  # type: ignore[arg-type]
        plan_index=index,
        channel_count=count,
        retries=retries,
        now=NOW,
        policy=POLICY,
        rng=random.Random(7),
        retry_after=retry_after,
    )


def test_choose_skips_blocked_channels_in_order() -> None:
    choice = choose_channel(["whatsapp", "sms", "email"], 0, {"whatsapp": Block("no_consent:unsubscribed")})
    assert choice.index == 1 and choice.skips == (("whatsapp", "no_consent:unsubscribed"),)
    assert choose_channel(["whatsapp", "sms", "email"], 2, {}).index == 2


def test_all_blocked_for_good_means_no_channel() -> None:
    choice = choose_channel(["sms", "email"], 0, {"sms": Block("no_provider"), "email": Block("no_consent:bounced")})
    assert choice.index is None and choice.wait_until is None
    assert [reason for _, reason in choice.skips] == ["no_provider", "no_consent:bounced"]


def test_an_open_breaker_on_the_last_channel_waits_instead_of_failing() -> None:
    until = NOW + dt.timedelta(seconds=30)
    blocked = {"sms": Block("no_consent:unsubscribed"), "email": Block("breaker_open:smtp", until)}
    choice = choose_channel(["sms", "email"], 0, blocked)
    assert choice.index is None and choice.wait_until == until
    assert choice.skips == (("sms", "no_consent:unsubscribed"),)


def test_rate_limited_retries_exactly_at_retry_after() -> None:
    decision = _after("rate_limited", retry_after=7)
    assert (decision.action, decision.plan_index, decision.retries) == ("retry", 0, 1)
    assert decision.available_at == NOW + dt.timedelta(seconds=7)


def test_failures_back_off_then_move_to_the_next_channel() -> None:
    first = _after("failure")
    assert first.action == "retry" and NOW + POLICY.base <= first.available_at <= NOW + dt.timedelta(seconds=4)
    exhausted = _after("failure", retries=3)
    assert (exhausted.action, exhausted.plan_index, exhausted.retries) == ("advance", 1, 0)
    assert exhausted.reason == "retries_exhausted"


def test_rejected_moves_on_at_once_and_the_last_channel_fails() -> None:
    assert (_after("rejected").action, _after("rejected").plan_index) == ("advance", 1)
    last = _after("rejected", index=2)
    assert last.action == "failed" and last.reason == "plan_exhausted:rejected"


@pytest.mark.parametrize("retries", [0, 5])
def test_unknown_never_moves_on_and_never_retries(retries: int) -> None:
    decision = _after("unknown", retries=retries)
    assert (decision.action, decision.plan_index, decision.retries) == ("wait", 0, retries)


def test_backoff_is_jittered_within_bounds_and_capped() -> None:
    rng = random.Random(1)
    for retries in range(12):
        ceiling = min(60.0, 2.0 * 2**retries)
        delays = [backoff(retries, POLICY, rng).total_seconds() for _ in range(50)]
        assert all(2.0 <= d <= ceiling for d in delays)
    spread = {round(backoff(4, POLICY, rng).total_seconds(), 3) for _ in range(20)}
    assert len(spread) > 10  # full jitter: retries do not arrive in lockstep
