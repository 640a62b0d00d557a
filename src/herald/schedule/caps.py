"""Frequency caps: at most N messages per person per rolling window, per channel and message class."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from herald.core.errors import InvalidInputError

OnExceed = Literal["hold", "drop"]
ANY = "*"


@dataclass(frozen=True, slots=True)
class CapRule:
    """`max_count` sends per rolling `window`; channel or message_class may be "*" (any)."""

    channel: str
    message_class: str
    max_count: int
    window: dt.timedelta
    on_exceed: OnExceed = "hold"

    def __post_init__(self) -> None:
        if self.max_count < 0:
            raise InvalidInputError("a cap's max_count cannot be negative", max_count=self.max_count)
        if self.window <= dt.timedelta(0):
            raise InvalidInputError("a cap's window must be positive", window=str(self.window))
        if self.on_exceed not in ("hold", "drop"):
            raise InvalidInputError("on_exceed is 'hold' or 'drop'", on_exceed=self.on_exceed)

    def applies_to(self, channel: str, message_class: str) -> bool:
        return self.channel in (ANY, channel) and self.message_class in (ANY, message_class)


@dataclass(frozen=True, slots=True)
class CapVerdict:
    allowed: bool
    release_at: dt.datetime | None  # when a held message may go; None when allowed or dropped
    reason: str  # under_cap | capped_hold | capped_drop | no_caps
    count: int = 0  # sends inside the window when checked


@dataclass(frozen=True, slots=True)
class SendRecord:
    channel: str
    message_class: str
    at: dt.datetime


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(f"{what} must be an aware datetime")
    return value.astimezone(dt.UTC)


def check_cap(rule: CapRule, recent_sends: Sequence[dt.datetime], now: dt.datetime) -> CapVerdict:
    """May one more message go now under this rule, given this person's matching sends?

    A send at t counts while now - window < t. Sends stamped after `now` (already planned) count too,
    so a burst of plans cannot overshoot the cap. A held message is released when enough of the
    oldest sends have aged out for the count to drop below the cap.
    """
    now = _aware(now, "now")
    start = now - rule.window
    in_window = sorted(t for t in (_aware(s, "a send time") for s in recent_sends) if t > start)
    count = len(in_window)
    if count < rule.max_count:
        return CapVerdict(allowed=True, release_at=None, reason="under_cap", count=count)
    if rule.on_exceed == "drop" or rule.max_count == 0:
        return CapVerdict(allowed=False, release_at=None, reason=f"capped_{rule.on_exceed}", count=count)
    release_at = in_window[count - rule.max_count] + rule.window
    return CapVerdict(allowed=False, release_at=release_at, reason="capped_hold", count=count)


def check_caps(
    rules: Iterable[CapRule], channel: str, message_class: str, sends: Iterable[SendRecord], now: dt.datetime
) -> CapVerdict:
    """Apply every matching rule: a drop wins; otherwise hold until the latest release among them."""
    history = tuple(sends)
    verdicts = []
    for rule in rules:
        if not rule.applies_to(channel, message_class):
            continue
        matching = [s.at for s in history if rule.applies_to(s.channel, s.message_class)]
        verdicts.append(check_cap(rule, matching, now))
    if not verdicts:
        return CapVerdict(allowed=True, release_at=None, reason="no_caps")
    return _combine(verdicts)


def _combine(verdicts: Sequence[CapVerdict]) -> CapVerdict:
    refused = [v for v in verdicts if not v.allowed]
    if not refused:
        return max(verdicts, key=lambda v: v.count)
    dropped = [v for v in refused if v.release_at is None]
    if dropped:
        return dropped[0]
    return max(refused, key=lambda v: v.release_at or dt.datetime.min.replace(tzinfo=dt.UTC))
