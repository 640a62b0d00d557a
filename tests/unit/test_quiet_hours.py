"""Quiet hours across DST days, odd offsets, several candidate zones, closed days and exempt classes."""

from __future__ import annotations

import datetime as dt

import pytest

from herald.core.clock import FrozenClock
from herald.core.errors import InvalidInputError
from herald.schedule.quiet_hours import (
    MESSAGE_CLASSES,
    MIDNIGHT,
    DailyWindow,
    MessageClass,
    NoCommonWindowError,
    QuietHoursApplied,
    QuietHoursPolicy,
    WeeklyWindows,
    decide_send_time,
    describe_decision,
    is_allowed,
    next_allowed_instant,
    require_next_allowed_instant,
)
from herald.schedule.timezones import load_zone, pin_tzdata, resolve_zone

DEFAULT = QuietHoursPolicy(exempt_transactional=False)  # quiet hours for every class
SUNDAY = 6


@pytest.fixture(autouse=True)
def _pinned() -> None:
    pin_tzdata()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=dt.UTC)


def at(clock_time: dt.datetime, zones: list[str], policy: QuietHoursPolicy = DEFAULT) -> dt.datetime | None:
    clock = FrozenClock(clock_time)
    return next_allowed_instant(clock.now(), zones, policy, "marketing")


def window_from(start: dt.time, end: dt.time) -> QuietHoursPolicy:
    return QuietHoursPolicy(default=WeeklyWindows.every_day(start, end))


# -- America/New_York on the 2026 DST change days --------------------------------------------


def test_new_york_night_before_spring_forward_waits_for_8_am_daylight_time() -> None:
    # 22:30 EST on Sat 7 March → 08:00 EDT on Sun 8 March = 12:00Z (not 13:00Z).
    assert at(utc(2026, 3, 8, 3, 30), ["America/New_York"]) == utc(2026, 3, 8, 12, 0)


def test_a_window_starting_inside_the_spring_forward_gap_opens_at_the_first_valid_instant() -> None:
    # 02:30 does not exist on 8 March 2026 in New York; the clock jumps from 01:59:59 EST to 03:00 EDT.
    policy = window_from(dt.time(2, 30), dt.time(20, 0))
    assert at(utc(2026, 3, 8, 5, 0), ["America/New_York"], policy) == utc(2026, 3, 8, 7, 0)


def test_fall_back_day_uses_the_earlier_reading_of_an_ambiguous_window_start() -> None:
    # 01:30 happens twice on 1 November 2026: 05:30Z (EDT) and 06:30Z (EST). The first one opens.
    policy = window_from(dt.time(1, 30), dt.time(20, 0))
    assert at(utc(2026, 11, 1, 4, 0), ["America/New_York"], policy) == utc(2026, 11, 1, 5, 30)


def test_fall_back_day_never_sends_while_the_repeated_hour_reads_outside_the_window() -> None:
    policy = window_from(dt.time(1, 30), dt.time(20, 0))
    ny = [load_zone("America/New_York")]
    windows = policy.default
    assert is_allowed(utc(2026, 11, 1, 5, 45), ny, windows)  # 01:45 EDT
    # 06:00Z–06:30Z reads 01:00–01:29 EST: outside the window again, so no send.
    assert not is_allowed(utc(2026, 11, 1, 6, 0), ny, windows)
    assert at(utc(2026, 11, 1, 6, 0), ["America/New_York"], policy) == utc(2026, 11, 1, 6, 30)


def test_new_york_fall_back_morning_waits_for_8_am_standard_time() -> None:
    # 01:30 EDT (first reading) on Sun 1 November → 08:00 EST = 13:00Z.
    assert at(utc(2026, 11, 1, 5, 30), ["America/New_York"]) == utc(2026, 11, 1, 13, 0)


def test_new_york_evening_after_fall_back_closes_at_20_est() -> None:
    assert at(utc(2026, 11, 2, 0, 59), ["America/New_York"]) == utc(2026, 11, 2, 0, 59)  # 19:59 EST
    assert at(utc(2026, 11, 2, 1, 0), ["America/New_York"]) == utc(2026, 11, 2, 13, 0)  # 20:00 → tomorrow


def test_an_allowed_now_is_returned_exactly_with_its_microseconds() -> None:
    now = dt.datetime(2026, 6, 3, 15, 12, 7, 123456, tzinfo=dt.UTC)
    assert at(now, ["America/New_York"]) == now


# -- zones without DST, and half/quarter-hour zones ------------------------------------------


def test_phoenix_has_no_dst_so_8_am_is_15z_all_year() -> None:
    assert at(utc(2026, 3, 8, 14, 0), ["America/Phoenix"]) == utc(2026, 3, 8, 15, 0)
    assert at(utc(2026, 7, 1, 14, 59), ["America/Phoenix"]) == utc(2026, 7, 1, 15, 0)
    assert at(utc(2026, 11, 1, 14, 0), ["America/Phoenix"]) == utc(2026, 11, 1, 15, 0)


def test_kathmandu_plus_0545() -> None:
    assert at(utc(2026, 6, 1, 2, 0), ["Asia/Kathmandu"]) == utc(2026, 6, 1, 2, 15)
    assert at(utc(2026, 6, 1, 14, 15), ["Asia/Kathmandu"]) == utc(2026, 6, 2, 2, 15)


def test_eucla_plus_0845() -> None:
    assert at(utc(2026, 6, 1, 22, 0), ["Australia/Eucla"]) == utc(2026, 6, 1, 23, 15)


def test_chatham_plus_1245_in_winter_and_plus_1345_in_summer() -> None:
    assert at(utc(2026, 7, 1, 18, 0), ["Pacific/Chatham"]) == utc(2026, 7, 1, 19, 15)
    assert at(utc(2026, 1, 10, 17, 0), ["Pacific/Chatham"]) == utc(2026, 1, 10, 18, 15)


def test_lord_howe_april_dst_end_shifts_by_thirty_minutes() -> None:
    # Sun 5 April 2026, 02:00 LHDT (+11) → 01:30 LHST (+10:30); 08:00 that day is 21:30Z on the 4th.
    assert at(utc(2026, 4, 4, 12, 0), ["Australia/Lord_Howe"]) == utc(2026, 4, 4, 21, 30)


def test_lord_howe_october_dst_start_and_a_window_inside_its_half_hour_gap() -> None:
    # Sun 4 October 2026, 02:00 LHST (+10:30) → 02:30 LHDT (+11); 08:00 that day is 21:00Z on the 3rd.
    assert at(utc(2026, 10, 3, 12, 0), ["Australia/Lord_Howe"]) == utc(2026, 10, 3, 21, 0)
    # 02:15 does not exist that night: the window opens at 02:30 LHDT = 15:30Z.
    policy = window_from(dt.time(2, 15), dt.time(20, 0))
    assert at(utc(2026, 10, 3, 12, 0), ["Australia/Lord_Howe"], policy) == utc(2026, 10, 3, 15, 30)


# -- several candidate zones: the intersection -----------------------------------------------


def test_an_alaska_number_waits_until_it_is_8_am_in_adak_too() -> None:
    zones = list(resolve_zone(None, "+19075550123", None, None).zones)
    assert set(zones) == {"America/Anchorage", "America/Adak"}
    # July: Anchorage opens 16:00Z, Adak 17:00Z; Anchorage closes 04:00Z.
    assert at(utc(2026, 7, 1, 16, 30), zones) == utc(2026, 7, 1, 17, 0)
    assert at(utc(2026, 7, 2, 3, 59), zones) == utc(2026, 7, 2, 3, 59)
    assert at(utc(2026, 7, 2, 4, 0), zones) == utc(2026, 7, 2, 17, 0)


def test_a_toll_free_number_is_only_sent_when_every_nanp_zone_is_awake() -> None:
    zones = list(resolve_zone(None, "+18005551234", None, None).zones)
    # From Guam (+10) to Pago Pago (−11) the common window is 22:00Z–22:30Z in July
    # (08:00 in Guam … 20:00 in St John's, −02:30).
    assert at(utc(2026, 7, 1, 22, 29), zones) == utc(2026, 7, 1, 22, 29)
    assert at(utc(2026, 7, 1, 22, 30), zones) == utc(2026, 7, 2, 22, 0)
    sent = at(utc(2026, 7, 1, 23, 0), zones)
    assert sent is not None
    assert is_allowed(sent, [load_zone(z) for z in zones], DEFAULT.default)


def test_zones_with_no_common_window_are_held() -> None:
    policy = window_from(dt.time(9, 0), dt.time(10, 0))
    now = utc(2026, 5, 1, 12, 0)
    decision = decide_send_time(now, ["America/New_York", "Europe/London"], policy, "marketing")
    assert decision.send_at is None
    assert decision.reason == "no_common_window"
    with pytest.raises(NoCommonWindowError) as caught:
        require_next_allowed_instant(now, ["America/New_York", "Europe/London"], policy, "marketing")
    assert caught.value.code == "no_common_window"


# -- weekly policy, classes, unknown zones ---------------------------------------------------


def test_sunday_closed_moves_a_saturday_night_message_to_monday_morning() -> None:
    policy = QuietHoursPolicy(default=WeeklyWindows.every_day(dt.time(8), dt.time(20)).with_day(SUNDAY, None))
    # Sat 7 March 20:30 EST → Sunday closed (and DST starts) → Mon 9 March 08:00 EDT = 12:00Z.
    assert at(utc(2026, 3, 8, 1, 30), ["America/New_York"], policy) == utc(2026, 3, 9, 12, 0)
    # Sunday is read on the person's calendar: Sun 09:00 in New York is still closed.
    assert at(utc(2026, 3, 8, 13, 0), ["America/New_York"], policy) == utc(2026, 3, 9, 12, 0)


def test_a_window_ending_at_midnight_runs_to_the_end_of_the_day() -> None:
    policy = window_from(dt.time(20, 0), dt.time(0, 0))
    assert at(utc(2026, 6, 1, 23, 59), ["UTC"], policy) == utc(2026, 6, 1, 23, 59)
    assert at(utc(2026, 6, 2, 0, 0), ["UTC"], policy) == utc(2026, 6, 2, 20, 0)


def test_quiet_hours_keep_marketing_and_incidents_but_not_transactional_by_default() -> None:
    night = utc(2026, 6, 1, 7, 0)  # 03:00 in New York
    for message_class in ("marketing", "incident"):
        decision = decide_send_time(night, ["America/New_York"], QuietHoursPolicy(), message_class)
        assert (decision.send_at, decision.reason) == (utc(2026, 6, 1, 12, 0), "deferred")
    # A password reset the person just asked for goes now, also when the zone is unknown.
    for zones in (["America/New_York"], []):
        policy = QuietHoursPolicy(default_country="US")
        decision = decide_send_time(night, zones, policy, "transactional")
        assert (decision.send_at, decision.reason) == (night, "exempt")


def test_every_class_keeps_quiet_hours_unless_the_policy_exempts_it() -> None:
    night = utc(2026, 6, 1, 7, 0)  # 03:00 in New York
    for message_class in MESSAGE_CLASSES:
        decision = decide_send_time(night, ["America/New_York"], DEFAULT, message_class)
        assert decision.send_at == utc(2026, 6, 1, 12, 0)
        assert decision.reason == "deferred"
    policy = QuietHoursPolicy(exempt_transactional=True, exempt_incident=True)
    exempt: tuple[MessageClass, ...] = ("transactional", "incident")
    for message_class in exempt:
        decision = decide_send_time(night, ["America/New_York"], policy, message_class)
        assert (decision.send_at, decision.reason) == (night, "exempt")
    assert decide_send_time(night, ["America/New_York"], policy, "marketing").send_at == utc(2026, 6, 1, 12)


def test_a_class_can_have_its_own_window() -> None:
    policy = QuietHoursPolicy(per_class={"transactional": WeeklyWindows.every_day(dt.time(7), dt.time(22))})
    now = utc(2026, 6, 1, 11, 30)  # 07:30 in New York
    assert next_allowed_instant(now, ["America/New_York"], policy, "transactional") == now
    assert next_allowed_instant(now, ["America/New_York"], policy, "marketing") == utc(2026, 6, 1, 12, 0)


def test_an_unknown_zone_falls_back_to_the_policy_zones_then_the_default_country_then_holds() -> None:
    now = utc(2026, 6, 1, 0, 0)
    with_zones = QuietHoursPolicy(fallback_zones=("Asia/Kathmandu",))
    decision = decide_send_time(now, [], with_zones, "marketing")
    assert (decision.send_at, decision.zones) == (utc(2026, 6, 1, 2, 15), ("Asia/Kathmandu",))
    with_country = QuietHoursPolicy(default_country="NP")
    assert next_allowed_instant(now, [], with_country, "marketing") == utc(2026, 6, 1, 2, 15)
    decision = decide_send_time(now, [], DEFAULT, "marketing")
    assert (decision.send_at, decision.reason) == (None, "unknown_zone")


def test_bad_inputs_are_refused_with_invalid_input() -> None:
    with pytest.raises(InvalidInputError):
        next_allowed_instant(dt.datetime(2026, 6, 1, 12), ["UTC"], DEFAULT, "marketing")
    with pytest.raises(InvalidInputError):
        next_allowed_instant(utc(2026, 6, 1), ["Nowhere/Special"], DEFAULT, "marketing")
    with pytest.raises(InvalidInputError):
        next_allowed_instant(utc(2026, 6, 1), ["America"], DEFAULT, "marketing")
    with pytest.raises(InvalidInputError):
        next_allowed_instant(utc(2026, 6, 1), ["UTC"], DEFAULT, "newsletter")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        DailyWindow(dt.time(20), dt.time(8))
    with pytest.raises(InvalidInputError):
        WeeklyWindows(days=(None,) * 6)


def test_the_decision_says_which_zone_and_window_it_applied() -> None:
    night = utc(2026, 6, 1, 7, 37)
    policy = QuietHoursPolicy(default_country="US")
    held = decide_send_time(night, ["America/New_York"], policy, "marketing")
    applied = describe_decision(held, ["America/New_York"], "contact", policy, "marketing")
    assert applied == QuietHoursApplied("America/New_York (contact)", "08:00-20:00 local, every day")

    unknown = decide_send_time(night, [], policy, "marketing")
    applied = describe_decision(unknown, [], "unknown", policy, "marketing")
    assert applied.zone == f"every zone of US ({len(unknown.zones)}; zone unknown)" and len(unknown.zones) > 20

    exempt = decide_send_time(night, [], policy, "transactional")
    assert describe_decision(exempt, [], "unknown", policy, "transactional") == QuietHoursApplied(
        "unknown", "exempt: transactional"
    )
    fallback = QuietHoursPolicy(fallback_zones=("Europe/Paris",))
    decision = decide_send_time(night, [], fallback, "incident")
    applied = describe_decision(decision, [], "unknown", fallback, "incident")
    assert applied.zone == "Europe/Paris (fallback; zone unknown)"
    sunday_closed = QuietHoursPolicy(default=WeeklyWindows.every_day(dt.time(9), MIDNIGHT).with_day(6, None))
    decision = decide_send_time(night, ["UTC"], sunday_closed, "marketing")
    assert describe_decision(decision, ["UTC"], "contact", sunday_closed, "marketing").window == (
        "local: Mon 09:00-24:00, Tue 09:00-24:00, Wed 09:00-24:00, Thu 09:00-24:00, Fri 09:00-24:00, "
        "Sat 09:00-24:00, Sun closed"
    )
