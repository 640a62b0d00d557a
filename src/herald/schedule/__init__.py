"""Pure scheduling rules: a person's time zones, quiet hours and frequency caps."""

from herald.schedule.caps import CapRule, CapVerdict, SendRecord, check_cap, check_caps
from herald.schedule.quiet_hours import (
    DailyWindow,
    NoCommonWindowError,
    QuietHoursDecision,
    QuietHoursPolicy,
    WeeklyWindows,
    decide_send_time,
    next_allowed_instant,
    require_next_allowed_instant,
)
from herald.schedule.timezones import ZoneResolution, pin_tzdata, resolve_zone

__all__ = [
    "CapRule",
    "CapVerdict",
    "DailyWindow",
    "NoCommonWindowError",
    "QuietHoursDecision",
    "QuietHoursPolicy",
    "SendRecord",
    "WeeklyWindows",
    "ZoneResolution",
    "check_cap",
    "check_caps",
    "decide_send_time",
    "next_allowed_instant",
    "pin_tzdata",
    "require_next_allowed_instant",
    "resolve_zone",
]
