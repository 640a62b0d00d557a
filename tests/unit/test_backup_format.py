"""Pure parts of backups: canonical rows, the manifest, and when a scheduled backup is due."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from herald.backup.format import FORMAT_VERSION, Manifest, TableEntry, canonical_line, decoder_for
from herald.backup.schedule import is_due, parse_schedule, period_start
from herald.core.errors import BackupVerificationError, InvalidInputError
from herald.db.types import JSONType, UTCDateTime

UTC = dt.UTC
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def test_canonical_line_is_sorted_compact_utc_and_unescaped() -> None:
    at = dt.datetime(2026, 3, 1, 17, 30, tzinfo=IST)
    line = canonical_line(
        ["z", "a", "when", "ok", "n", "f", "blob", "money"],
        [{"b": [1, {"y": None, "x": True}], "a": "é"}, "李", at, False, 7, 0.1, b"\x00\xff", Decimal("1.50")],
    )
    assert (
        line
        == (
            '{"a":"李","blob":"AP8=","f":0.1,"money":"1.50","n":7,"ok":false,'
            '"when":"2026-03-01T12:00:00.000000+00:00","z":{"a":"é","b":[1,{"x":true,"y":null}]}}\n'
        ).encode()
    )


def test_equal_instants_in_different_zones_have_one_canonical_form() -> None:
    a = dt.datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert canonical_line(["t"], [a]) == canonical_line(["t"], [a.astimezone(IST)])


def test_decoders_invert_the_canonical_form() -> None:
    table = sa.Table(
        "t",
        sa.MetaData(),
        sa.Column("at", UTCDateTime),
        sa.Column("doc", JSONType),
        sa.Column("score", sa.Float),
        sa.Column("flag", sa.Boolean),
        sa.Column("raw", sa.LargeBinary),
        sa.Column("amount", sa.Numeric(10, 2)),
    )
    values = [dt.datetime(2026, 1, 1, 1, tzinfo=UTC), {"a": [1]}, 0.25, True, b"\x01", Decimal("2.50")]
    encoded = json.loads(canonical_line([c.name for c in table.columns], values))
    decoded = [decoder_for(c)(encoded[c.name]) for c in table.columns]
    assert decoded == values
    assert decoder_for(table.c.at)(None) is None


def test_manifest_round_trips_and_refuses_newer_formats() -> None:
    manifest = Manifest(
        herald_version="0.1.0",
        alembic_revision="0001",
        source_engine="sqlite",
        created_at=dt.datetime(2026, 11, 22, 12, tzinfo=UTC),
        tables=(TableEntry("people", ("id", "first_name"), 2, "ab" * 32),),
    )
    assert Manifest.from_json(manifest.to_json()) == manifest

    newer = json.loads(manifest.to_json())
    newer["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(BackupVerificationError, match="newer Herald"):
        Manifest.from_json(json.dumps(newer).encode())
    with pytest.raises(BackupVerificationError, match="manifest is unreadable"):
        Manifest.from_json(b'{"format": "something-else"}')
    with pytest.raises(BackupVerificationError, match="manifest is unreadable"):
        Manifest.from_json(b"\x1f\x8b not json")


@pytest.mark.parametrize(
    ("schedule", "at", "start"),
    [
        ("hourly", dt.datetime(2026, 5, 6, 7, 59, 59), dt.datetime(2026, 5, 6, 7)),
        ("daily", dt.datetime(2026, 5, 6, 23, 59), dt.datetime(2026, 5, 6)),
        ("weekly", dt.datetime(2026, 5, 10, 12), dt.datetime(2026, 5, 4)),  # Sunday → Monday
        ("weekly", dt.datetime(2026, 5, 4, 0, 0), dt.datetime(2026, 5, 4)),
        ("monthly", dt.datetime(2026, 2, 28, 23), dt.datetime(2026, 2, 1)),
    ],
)
def test_period_start(schedule: str, at: dt.datetime, start: dt.datetime) -> None:
    assert period_start(schedule, at.replace(tzinfo=UTC)) == start.replace(tzinfo=UTC)


def test_period_start_uses_utc_whatever_the_zone() -> None:
    late_local = dt.datetime(2026, 5, 7, 1, 0, tzinfo=IST)  # still 6 May in UTC
    assert period_start("daily", late_local) == dt.datetime(2026, 5, 6, tzinfo=UTC)


def test_is_due() -> None:
    now = dt.datetime(2026, 5, 6, 10, tzinfo=UTC)
    earlier_today = now - dt.timedelta(hours=9)
    yesterday = now - dt.timedelta(hours=11)
    assert not is_due("off", now, None, None)
    assert is_due("daily", now, None, None)
    assert not is_due("daily", now, earlier_today, "verified")
    assert is_due("daily", now, yesterday, "verified")
    assert is_due("weekly", now, now - dt.timedelta(days=3), "verified")  # last Sunday → new week
    assert not is_due("monthly", now, now - dt.timedelta(days=5), "verified")
    # A failure is retried, but not on every worker pass.
    assert is_due("daily", now, earlier_today, "failed")
    assert not is_due("daily", now, now - dt.timedelta(minutes=30), "failed")


def test_parse_schedule() -> None:
    assert parse_schedule(" Daily ") == "daily"
    with pytest.raises(InvalidInputError, match="HERALD_BACKUP_SCHEDULE"):
        parse_schedule("fortnightly")
