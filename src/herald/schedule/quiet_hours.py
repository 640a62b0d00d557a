"""Quiet hours: the next instant at which a message may go out in every candidate zone of a person."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from herald.core.channels import MESSAGE_CLASSES, MessageClass
from herald.core.errors import HeraldError, InvalidInputError
from herald.schedule.timezones import country_zones, load_zone

DecisionReason = Literal["allowed_now", "deferred", "exempt", "no_common_window", "unknown_zone"]

MIDNIGHT = dt.time(0, 0)
DEFAULT_HORIZON = dt.timedelta(days=8)


class NoCommonWindowError(HeraldError):
    """No instant in the horizon is inside the allowed window in every candidate zone."""

    code = "no_common_window"
    http_status = 422


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """Local wall-clock hours [start, end); an end of 00:00 means the end of the day (24:00)."""

    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise InvalidInputError("window times are local wall-clock times without a zone")
        if self.end != MIDNIGHT and self.end <= self.start:
            raise InvalidInputError(
                "a window must end after it starts (windows over midnight: split them per day)",
                start=self.start.isoformat(),
                end=self.end.isoformat(),
            )

    def contains(self, wall: dt.time) -> bool:
        return self.start <= wall and (self.end == MIDNIGHT or wall < self.end)

    def boundaries(self) -> tuple[dt.time, ...]:
        return (self.start,) if self.end == MIDNIGHT else (self.start, self.end)


@dataclass(frozen=True, slots=True)
class WeeklyWindows:
    """One window (or None: closed) per weekday, Monday first, read on the person's local calendar."""

    days: tuple[DailyWindow | None, ...]

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise InvalidInputError("weekly windows need exactly seven days, Monday first")

    @classmethod
    def every_day(cls, start: dt.time, end: dt.time) -> WeeklyWindows:
        return cls(days=(DailyWindow(start, end),) * 7)

    def with_day(self, weekday: int, window: DailyWindow | None) -> WeeklyWindows:
        """A copy with one weekday changed (0 = Monday … 6 = Sunday; None closes the day)."""
        days = list(self.days)
        days[weekday] = window
        return WeeklyWindows(days=tuple(days))

    def window_on(self, day: dt.date) -> DailyWindow | None:
        return self.days[day.weekday()]


DEFAULT_WINDOWS = WeeklyWindows.every_day(dt.time(8, 0), dt.time(20, 0))


@dataclass(frozen=True, slots=True)
class QuietHoursPolicy:
    """When messages may reach people; stricter rules (state law, the person's own wish) narrow it."""

    default: WeeklyWindows = DEFAULT_WINDOWS
    per_class: Mapping[str, WeeklyWindows] = field(default_factory=dict)
    # Quiet hours exist for messages nobody asked for (marketing, proactive notices). A transactional
    # message the person just triggered (password reset, receipt, login code) is useless at 08:00, so it
    # is exempt unless the operator opts it back in. Incidents keep quiet hours unless opted out.
    exempt_transactional: bool = True
    exempt_incident: bool = False
    # Used when a person's zone is unknown: these zones, else every zone of default_country.
    fallback_zones: tuple[str, ...] = ()
    default_country: str | None = None
    horizon: dt.timedelta = DEFAULT_HORIZON

    def windows_for(self, message_class: MessageClass) -> WeeklyWindows:
        return self.per_class.get(message_class, self.default)

    def is_exempt(self, message_class: MessageClass) -> bool:
        if message_class == "transactional":
            return self.exempt_transactional
        if message_class == "incident":
            return self.exempt_incident
        return False


@dataclass(frozen=True, slots=True)
class QuietHoursDecision:
    send_at: dt.datetime | None  # aware UTC; None means hold (no common window, or no zone at all)
    zones: tuple[str, ...]  # the zones the decision was made for (after fallbacks)
    reason: DecisionReason


def _require_utc(now_utc: dt.datetime) -> dt.datetime:
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise InvalidInputError("quiet hours need an aware datetime")
    return now_utc.astimezone(dt.UTC)


def _load_zones(zones: Sequence[str]) -> tuple[zoneinfo.ZoneInfo, ...]:
    loaded = []
    for name in zones:
        try:
            loaded.append(load_zone(name))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise InvalidInputError(f"unknown time zone {name!r}", zone=name) from exc
    return tuple(loaded)


def is_allowed_in_zone(instant: dt.datetime, zone: zoneinfo.ZoneInfo, windows: WeeklyWindows) -> bool:
    """Is the wall clock at the person's place inside today's window at this instant?"""
    local = instant.astimezone(zone)
    window = windows.window_on(local.date())
    return window is not None and window.contains(local.time())


def is_allowed(instant: dt.datetime, zones: Sequence[zoneinfo.ZoneInfo], windows: WeeklyWindows) -> bool:
    return all(is_allowed_in_zone(instant, zone, windows) for zone in zones)


def _transition_between(early: dt.datetime, late: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The first second at which the zone's offset differs from its offset at `early` (bisection)."""
    offset = early.astimezone(zone).utcoffset()
    low, high = int(early.timestamp()), int(late.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, dt.UTC).astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return dt.datetime.fromtimestamp(high, dt.UTC)


def _instants_at_wall(wall: dt.datetime, zone: zoneinfo.ZoneInfo) -> Iterator[dt.datetime]:
    """Every instant where the allowed-ness may change because the wall clock reaches `wall`.

    Normally one instant. In a fold (the wall time happens twice) both readings and the transition
    between them; in a gap (it never happens) the transition, which is the first valid instant after.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(dt.UTC)
    if first == second:
        yield first
        return
    early, late = min(first, second), max(first, second)
    yield early
    yield _transition_between(early, late, zone)
    yield late


def _change_points(
    zone: zoneinfo.ZoneInfo, windows: WeeklyWindows, start: dt.datetime, end: dt.datetime
) -> Iterator[dt.datetime]:
    """Instants in [start, end] where allowed-ness in this zone can flip: midnights and window edges."""
    day = start.astimezone(zone).date() - dt.timedelta(days=1)
    last = end.astimezone(zone).date() + dt.timedelta(days=1)
    while day <= last:
        window = windows.window_on(day)
        edges = (MIDNIGHT, *(window.boundaries() if window else ()))
        for edge in edges:
            for instant in _instants_at_wall(dt.datetime.combine(day, edge), zone):
                if start <= instant <= end:
                    yield instant
        day += dt.timedelta(days=1)


def earliest_common_instant(
    now_utc: dt.datetime, zones: Sequence[zoneinfo.ZoneInfo], windows: WeeklyWindows, horizon: dt.timedelta
) -> dt.datetime | None:
    """The first instant ≥ now inside the window in every zone, or None within the horizon.

    Allowed-ness only changes at the change points of some zone, so checking `now` and every change
    point up to the horizon, in order, finds the exact answer without stepping minute by minute.
    """
    if is_allowed(now_utc, zones, windows):
        return now_utc
    end = now_utc + horizon
    candidates: set[dt.datetime] = set()
    for zone in zones:
        candidates.update(_change_points(zone, windows, now_utc, end))
    for instant in sorted(candidates):
        if is_allowed(instant, zones, windows):
            return instant
    return None


def _zones_or_fallback(zones: Sequence[str], policy: QuietHoursPolicy) -> tuple[str, ...]:
    if zones:
        return tuple(dict.fromkeys(zones))
    if policy.fallback_zones:
        return tuple(dict.fromkeys(policy.fallback_zones))
    return country_zones(policy.default_country)


def decide_send_time(
    now_utc: dt.datetime, zones: Sequence[str], policy: QuietHoursPolicy, message_class: MessageClass
) -> QuietHoursDecision:
    """Send now, defer to a later instant, or hold, with the reason and the zones that decided it."""
    now = _require_utc(now_utc)
    if message_class not in MESSAGE_CLASSES:
        raise InvalidInputError(f"unknown message class {message_class!r}", message_class=message_class)
    if policy.is_exempt(message_class):
        return QuietHoursDecision(now, tuple(zones), "exempt")
    names = _zones_or_fallback(zones, policy)
    if not names:
        return QuietHoursDecision(None, (), "unknown_zone")
    at = earliest_common_instant(now, _load_zones(names), policy.windows_for(message_class), policy.horizon)
    if at is None:
        return QuietHoursDecision(None, names, "no_common_window")
    return QuietHoursDecision(at, names, "allowed_now" if at == now else "deferred")


@dataclass(frozen=True, slots=True)
class QuietHoursApplied:
    """What a decision used, in words for people: the zone (and where it came from) and the window."""

    zone: str  # "America/New_York (contact)", "every zone of US (29; zone unknown)", "unknown"
    window: str  # "08:00-20:00 local, every day", "exempt: transactional"


DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MAX_TEXT = 200  # fits the ledger's quiet_zone / quiet_window columns


def _hhmm(value: dt.time) -> str:
    return "24:00" if value == MIDNIGHT else value.strftime("%H:%M")


def _window_text(window: DailyWindow | None) -> str:
    return "closed" if window is None else f"{window.start.strftime('%H:%M')}-{_hhmm(window.end)}"


def describe_windows(windows: WeeklyWindows) -> str:
    """ "08:00-20:00 local, every day", or one entry per weekday when the days differ."""
    if len(set(windows.days)) == 1:
        return f"{_window_text(windows.days[0])} local, every day"
    return "local: " + ", ".join(
        f"{name} {_window_text(day)}" for name, day in zip(DAY_NAMES, windows.days, strict=True)
    )


def _zones_text(zones: Sequence[str]) -> str:
    shown = ", ".join(zones[:3])
    return shown if len(zones) <= 3 else f"{shown} +{len(zones) - 3} more"


def describe_decision(
    decision: QuietHoursDecision,
    person_zones: Sequence[str],
    zone_source: str,
    policy: QuietHoursPolicy,
    message_class: MessageClass,
) -> QuietHoursApplied:
    """The zone and window a decision applied, for the ledger row (shown by `messages show`, the API, the page)."""
    if person_zones:
        zone = f"{_zones_text(person_zones)} ({zone_source})"
    elif decision.zones and policy.fallback_zones:
        zone = f"{_zones_text(decision.zones)} (fallback; zone unknown)"
    elif decision.zones:
        zone = f"every zone of {policy.default_country} ({len(decision.zones)}; zone unknown)"
    else:
        zone = "unknown"
    if decision.reason == "exempt":
        window = f"exempt: {message_class}"
    else:
        window = describe_windows(policy.windows_for(message_class))
    return QuietHoursApplied(zone=zone[:_MAX_TEXT], window=window[:_MAX_TEXT])


def next_allowed_instant(
    now_utc: dt.datetime, zones: Sequence[str], policy: QuietHoursPolicy, message_class: MessageClass
) -> dt.datetime | None:
    """`now` if allowed in every candidate zone, else the earliest later instant that is; None = hold."""
    return decide_send_time(now_utc, zones, policy, message_class).send_at


def require_next_allowed_instant(
    now_utc: dt.datetime, zones: Sequence[str], policy: QuietHoursPolicy, message_class: MessageClass
) -> dt.datetime:
    """Like next_allowed_instant, but a hold is a NoCommonWindowError for callers that cannot hold."""
    decision = decide_send_time(now_utc, zones, policy, message_class)
    if decision.send_at is None:
        raise NoCommonWindowError(
            "no instant is inside the allowed window in every candidate zone",
            zones=list(decision.zones),
            reason=decision.reason,
            message_class=message_class,
        )
    return decision.send_at
