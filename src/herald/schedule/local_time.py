"""A wall-clock time on a date in a given zone, as an instant: DST-safe (gaps move forward, folds take the first)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib

from herald.schedule.timezones import load_zone

_MINUTE = dt.timedelta(minutes=1)


@functools.lru_cache(maxsize=4096)
def local_instant(wall: dt.datetime, zone_name: str) -> dt.datetime:
    """The UTC instant at which the clocks of `zone_name` show `wall` (naive).

    An ambiguous wall time (the hour repeated when clocks go back) takes its first occurrence. A wall time
    that does not exist (skipped when clocks go forward) moves to the first valid instant after it: the
    moment of the transition, e.g. 02:30 on a New York spring-forward date → 03:00 EDT (07:00Z).
    """
    if wall.tzinfo is not None:
        raise ValueError("wall must be a naive local date and time")
    zone = load_zone(zone_name)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists (fold=0 is the first occurrence of an ambiguous time)
    # In a gap: fold=1 reads the wall time with the offset after the change, giving an instant before the
    # transition; the transition is the first instant whose local reading is at or past `wall`. Gaps are
    # whole minutes in every zone tzdata knows, so a minute walk is exact (and runs only for gap times).
    probe = wall.replace(tzinfo=zone, fold=1).astimezone(dt.UTC).replace(second=0, microsecond=0)
    while probe.astimezone(zone).replace(tzinfo=None) < wall:
        probe += _MINUTE
    return probe


def spread_offset(person_id: int, spread_minutes: int) -> dt.timedelta:
    """A person's fixed place in a spread window: the same every time it is computed (simulation = launch)."""
    if spread_minutes <= 0:
        return dt.timedelta(0)
    digest = hashlib.blake2b(person_id.to_bytes(8, "big", signed=True), digest_size=8).digest()
    return dt.timedelta(seconds=int.from_bytes(digest, "big") % (spread_minutes * 60))


def rate_offset(ordinal: int, per_minute: int | None) -> dt.timedelta:
    """Row `ordinal` (0-based) of a send paced at `per_minute` goes at start + ordinal / rate."""
    if not per_minute:
        return dt.timedelta(0)
    return dt.timedelta(seconds=ordinal * 60 / per_minute)
