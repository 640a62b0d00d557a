"""Property: next_allowed_instant equals a minute-by-minute brute-force search, over odd zones and DST days."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.schedule.quiet_hours import (
    DailyWindow,
    QuietHoursPolicy,
    WeeklyWindows,
    is_allowed,
    next_allowed_instant,
)
from herald.schedule.timezones import load_zone, pin_tzdata

pin_tzdata()

ZONES = [
    "America/New_York",
    "America/Phoenix",
    "America/St_Johns",
    "America/Santiago",
    "Asia/Kathmandu",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Australia/Eucla",
    "Pacific/Chatham",
    "Pacific/Honolulu",
    "Pacific/Kiritimati",
    "Europe/London",
    "Africa/Casablanca",
    "America/Havana",  # spring forward at midnight: the gap crosses the date line of the day
    "Asia/Beirut",
    "UTC",
]


def _offset(zone: zoneinfo.ZoneInfo, instant: dt.datetime) -> dt.timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _transitions_2026(name: str) -> list[dt.datetime]:
    """Offset changes in 2026, found independently of the code under test (hourly scan + minute scan)."""
    zone = load_zone(name)
    found = []
    hour = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    while hour.year == 2026:
        following = hour + dt.timedelta(hours=1)
        if _offset(zone, hour) != _offset(zone, following):
            minute = hour
            while _offset(zone, minute) == _offset(zone, hour):
                minute += dt.timedelta(minutes=1)
            found.append(minute)
        hour = following
    return found


# (zone, instant of a 2026 offset change): gaps and folds are where quiet-hours code goes wrong.
TRANSITIONS = [(name, at) for name in ZONES for at in _transitions_2026(name)]
MINUTE = dt.timedelta(minutes=1)


def brute_force(
    now: dt.datetime, zones: list[zoneinfo.ZoneInfo], windows: WeeklyWindows, horizon: dt.timedelta
) -> dt.datetime | None:
    """The oracle: try `now`, then every whole minute up to the horizon."""
    if is_allowed(now, zones, windows):
        return now
    instant = now.replace(second=0, microsecond=0) + MINUTE
    end = now + horizon
    while instant <= end:
        if is_allowed(instant, zones, windows):
            return instant
        instant += MINUTE
    return None


def _time(minutes: int) -> dt.time:
    return dt.time(0) if minutes == 1440 else dt.time(minutes // 60, minutes % 60)


@st.composite
def daily_windows(draw: st.DrawFn, near: int | None) -> DailyWindow | None:
    """A window on a 15-minute grid; with `near` (minutes after local midnight) its edges cluster there."""
    if draw(st.integers(0, 6)) == 0:
        return None
    if near is not None and draw(st.integers(0, 3)) > 0:
        low, high = max(0, near // 15 - 4), min(95, near // 15 + 4)
    else:
        low, high = 0, 95
    start = draw(st.integers(min_value=low, max_value=high))
    end = draw(st.integers(min_value=start + 1, max_value=96 if high == 95 else min(96, high + 4)))
    return DailyWindow(_time(start * 15), _time(end * 15))


@st.composite
def weekly(draw: st.DrawFn, near: int | None = None) -> WeeklyWindows:
    if draw(st.booleans()):
        window = draw(daily_windows(near))
        return WeeklyWindows(days=(window,) * 7)
    return WeeklyWindows(days=tuple(draw(daily_windows(near)) for _ in range(7)))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dt.datetime, list[str], WeeklyWindows]:
    """An instant, candidate zones and windows; usually built around one zone's DST transition."""
    seconds = dt.timedelta(seconds=draw(st.integers(min_value=0, max_value=59)))
    others = draw(st.lists(st.sampled_from(ZONES), min_size=0, max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        minutes = draw(st.integers(min_value=0, max_value=365 * 24 * 60))
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes) + seconds
        return now, others or ["UTC"], draw(weekly())
    zone, change = draw(st.sampled_from(TRANSITIONS))
    # Often within two hours of the change (inside a fold or just before a gap), else up to 1.5 days before.
    shift = draw(st.one_of(st.integers(min_value=-120, max_value=120), st.integers(-36 * 60, 12 * 60)))
    now = change + dt.timedelta(minutes=shift) + seconds
    local = (change - dt.timedelta(minutes=1)).astimezone(load_zone(zone))
    near = local.hour * 60 + local.minute
    zones = list(dict.fromkeys([zone, *others]))
    return now, zones, draw(weekly(near))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_next_allowed_instant_matches_brute_force(scenario: tuple[dt.datetime, list[str], WeeklyWindows]) -> None:
    now, zone_names, windows = scenario
    policy = QuietHoursPolicy(default=windows, horizon=dt.timedelta(days=3))
    zones = [load_zone(name) for name in zone_names]
    result = next_allowed_instant(now, zone_names, policy, "marketing")
    if result is not None:
        assert result >= now
        assert is_allowed(result, zones, windows)  # allowed in every candidate zone
    # …and nothing allowed was skipped between now and the result.
    assert result == brute_force(now, zones, windows, policy.horizon)


@settings(max_examples=60, deadline=None)
@given(
    change=st.sampled_from(TRANSITIONS),
    shift=st.integers(min_value=-48 * 60, max_value=48 * 60),
    zone_names=st.lists(st.sampled_from(ZONES), min_size=1, max_size=4, unique=True),
)
def test_default_policy_result_is_allowed_everywhere_and_not_later_than_needed(
    change: tuple[str, dt.datetime], shift: int, zone_names: list[str]
) -> None:
    now = change[1] + dt.timedelta(minutes=shift)
    policy = QuietHoursPolicy()
    zones = [load_zone(name) for name in zone_names]
    result = next_allowed_instant(now, zone_names, policy, "marketing")
    assert result == brute_force(now, zones, policy.default, policy.horizon)
