"""Campaign schedules as plain values: parsing, local wall times across DST, spread and pacing offsets."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.campaigns.model import Schedule, parse_schedule
from herald.core.errors import InvalidInputError
from herald.schedule.local_time import local_instant, rate_offset, spread_offset
from herald.schedule.timezones import load_zone

Z = dt.UTC


def test_schedules_parse_and_round_trip() -> None:
    assert parse_schedule(None) == Schedule()
    at = parse_schedule({"kind": "at", "at": "2026-12-24T10:00:00+01:00", "spread_minutes": 15})
    assert at.at == dt.datetime(2026, 12, 24, 9, 0, tzinfo=Z) and at.spread_minutes == 15
    local = parse_schedule({"kind": "local_time", "date": "2026-12-24", "time": "09:30"})
    assert (local.date, local.time) == (dt.date(2026, 12, 24), dt.time(9, 30))
    for schedule in (at, local, Schedule()):
        assert parse_schedule(schedule.to_json()) == schedule


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "soon"}, "schedule.kind"),
        ({"kind": "at"}, "schedule.at"),
        ({"kind": "at", "at": "2026-12-24T09:00:00"}, "schedule.at"),
        ({"kind": "local_time", "date": "2026-02-30", "time": "09:00"}, "schedule.date"),
        ({"kind": "local_time", "date": "2026-12-24", "time": "9:00"}, "schedule.time"),
        ({"kind": "local_time", "date": "2026-12-24", "time": "24:00"}, "schedule.time"),
        ({"kind": "now", "spread_minutes": -1}, "schedule.spread_minutes"),
        ({"kind": "now", "spread_minutes": True}, "schedule.spread_minutes"),
        ({"kind": "now", "every": "day"}, "schedule.every"),
    ],
)
def test_bad_schedules_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_schedule(data)
    assert caught.value.fields["field"] == field


def test_gap_times_move_to_the_transition_and_folds_take_the_first_occurrence() -> None:
    ny, london, lord_howe = "America/New_York", "Europe/London", "Australia/Lord_Howe"
    assert local_instant(dt.datetime(2027, 3, 14, 2, 30), ny) == dt.datetime(2027, 3, 14, 7, 0, tzinfo=Z)
    assert local_instant(dt.datetime(2027, 11, 7, 1, 30), ny) == dt.datetime(2027, 11, 7, 5, 30, tzinfo=Z)
    assert local_instant(dt.datetime(2027, 3, 28, 1, 30), london) == dt.datetime(2027, 3, 28, 1, 0, tzinfo=Z)
    assert local_instant(dt.datetime(2027, 10, 31, 1, 30), london) == dt.datetime(2027, 10, 31, 0, 30, tzinfo=Z)
    # A half-hour DST shift: 02:00 → 02:30 on the first Sunday of October 2027.
    assert local_instant(dt.datetime(2027, 10, 3, 2, 15), lord_howe).astimezone(load_zone(lord_howe)).time() == (
        dt.time(2, 30)
    )
    with pytest.raises(ValueError, match="naive"):
        local_instant(dt.datetime(2027, 1, 1, tzinfo=Z), ny)


@settings(max_examples=300, deadline=None)
@given(
    wall=st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2030, 12, 31)),
    zone=st.sampled_from(["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
)
def test_the_instant_reads_the_wall_time_or_the_first_valid_one_after(wall: dt.datetime, zone: str) -> None:
    wall = wall.replace(second=0, microsecond=0)
    instant = local_instant(wall, zone)
    shown = instant.astimezone(load_zone(zone)).replace(tzinfo=None)
    assert shown >= wall  # never earlier than asked
    if shown != wall:  # only inside a gap: a minute earlier still reads before the wall time
        before = (instant - dt.timedelta(minutes=1)).astimezone(load_zone(zone)).replace(tzinfo=None)
        assert before < wall and shown - wall <= dt.timedelta(hours=1)


def test_spread_is_fixed_per_person_and_inside_the_window_and_rate_paces_rows() -> None:
    offsets = [spread_offset(pid, 30) for pid in range(1, 500)]
    assert offsets == [spread_offset(pid, 30) for pid in range(1, 500)]  # deterministic
    assert all(dt.timedelta(0) <= o < dt.timedelta(minutes=30) for o in offsets)
    assert len(set(offsets)) > 400
    assert spread_offset(7, 0) == dt.timedelta(0)
    assert rate_offset(0, 60) == dt.timedelta(0) and rate_offset(90, 60) == dt.timedelta(seconds=90)
    assert rate_offset(1000, None) == dt.timedelta(0)
