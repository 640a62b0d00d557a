"""Frequency caps over a rolling window: allow, hold until the oldest send ages out, or drop."""

from __future__ import annotations

import datetime as dt

import pytest

from herald.core.clock import FrozenClock
from herald.core.errors import InvalidInputError
from herald.schedule.caps import CapRule, SendRecord, check_cap, check_caps

DAY = dt.timedelta(hours=24)
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
THREE_A_DAY = CapRule("sms", "marketing", max_count=3, window=DAY, on_exceed="hold")


def hours_ago(*hours: float) -> list[dt.datetime]:
    return [NOW - dt.timedelta(hours=h) for h in hours]


def test_under_the_cap_is_allowed() -> None:
    verdict = check_cap(THREE_A_DAY, hours_ago(1, 5), NOW)
    assert (verdict.allowed, verdict.release_at, verdict.reason, verdict.count) == (True, None, "under_cap", 2)


def test_at_the_cap_a_hold_is_released_when_the_oldest_send_ages_out() -> None:
    verdict = check_cap(THREE_A_DAY, hours_ago(1, 20, 5), NOW)
    assert not verdict.allowed
    assert verdict.reason == "capped_hold"
    assert verdict.count == 3
    assert verdict.release_at == NOW - dt.timedelta(hours=20) + DAY  # 4 hours from now


def test_over_the_cap_waits_until_enough_sends_have_aged_out() -> None:
    # Five sends in the window with a cap of three: three must remain at most two, so the third
    # oldest (18 h ago) decides.
    verdict = check_cap(THREE_A_DAY, hours_ago(23, 20, 18, 2, 1), NOW)
    assert verdict.release_at == NOW + dt.timedelta(hours=6)


def test_the_released_instant_is_really_under_the_cap() -> None:
    sends = hours_ago(23, 20, 18, 2, 1)
    verdict = check_cap(THREE_A_DAY, sends, NOW)
    assert verdict.release_at is not None
    assert check_cap(THREE_A_DAY, sends, verdict.release_at).allowed
    assert not check_cap(THREE_A_DAY, sends, verdict.release_at - dt.timedelta(seconds=1)).allowed


def test_a_send_exactly_one_window_ago_no_longer_counts() -> None:
    assert check_cap(THREE_A_DAY, hours_ago(24, 2, 1), NOW).allowed
    assert not check_cap(THREE_A_DAY, hours_ago(23.99, 2, 1), NOW).allowed


def test_sends_already_planned_after_now_count_too() -> None:
    planned = [NOW + dt.timedelta(hours=1)]
    assert not check_cap(THREE_A_DAY, [*hours_ago(2, 1), *planned], NOW).allowed


def test_drop_rule_refuses_without_a_release_time() -> None:
    rule = CapRule("email", "marketing", max_count=1, window=dt.timedelta(days=7), on_exceed="drop")
    verdict = check_cap(rule, hours_ago(30), NOW)
    assert (verdict.allowed, verdict.release_at, verdict.reason) == (False, None, "capped_drop")


def test_a_zero_cap_never_releases() -> None:
    rule = CapRule("sms", "marketing", max_count=0, window=DAY)
    verdict = check_cap(rule, [], NOW)
    assert (verdict.allowed, verdict.release_at) == (False, None)


def test_with_a_frozen_clock_a_held_message_goes_once_time_has_passed() -> None:
    clock = FrozenClock(NOW)
    sends = hours_ago(20, 10, 1)
    verdict = check_cap(THREE_A_DAY, sends, clock.now())
    assert verdict.release_at == NOW + dt.timedelta(hours=4)
    clock.advance(dt.timedelta(hours=4))
    assert check_cap(THREE_A_DAY, sends, clock.now()).allowed


def test_several_rules_combine_wildcards_and_the_strictest_answer_wins() -> None:
    per_channel = THREE_A_DAY
    any_channel = CapRule("*", "marketing", max_count=4, window=DAY)
    history = [
        SendRecord("sms", "marketing", NOW - dt.timedelta(hours=2)),
        SendRecord("email", "marketing", NOW - dt.timedelta(hours=3)),
        SendRecord("email", "marketing", NOW - dt.timedelta(hours=22)),
        SendRecord("whatsapp", "marketing", NOW - dt.timedelta(hours=10)),
        SendRecord("sms", "transactional", NOW - dt.timedelta(hours=1)),  # another class: not counted
    ]
    verdict = check_caps([per_channel, any_channel], "sms", "marketing", history, NOW)
    assert not verdict.allowed  # four marketing touches across channels in 24 h
    assert verdict.release_at == NOW + dt.timedelta(hours=2)  # the 22-hour-old e-mail ages out
    assert check_caps([per_channel], "sms", "marketing", history, NOW).allowed  # one sms only


def test_a_drop_rule_beats_a_hold_rule() -> None:
    hold = CapRule("sms", "*", max_count=1, window=DAY)
    drop = CapRule("*", "*", max_count=1, window=DAY, on_exceed="drop")
    history = [SendRecord("sms", "marketing", NOW - dt.timedelta(hours=1))]
    assert check_caps([hold, drop], "sms", "marketing", history, NOW).reason == "capped_drop"


def test_no_matching_rule_means_no_cap() -> None:
    verdict = check_caps([THREE_A_DAY], "email", "marketing", [], NOW)
    assert (verdict.allowed, verdict.reason) == (True, "no_caps")


def test_bad_rules_and_naive_times_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        CapRule("sms", "marketing", max_count=-1, window=DAY)
    with pytest.raises(InvalidInputError):
        CapRule("sms", "marketing", max_count=1, window=dt.timedelta(0))
    with pytest.raises(InvalidInputError):
        check_cap(THREE_A_DAY, [dt.datetime(2026, 11, 22, 11)], NOW)
