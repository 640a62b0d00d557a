"""Local-time schedules across zones and DST, simulated and launched, on both engines."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from herald.db.runtime import Runtime
from tests.integration.test_campaigns import EVERYONE, _launch, _rows, _segment, _subscribed, _template

NEW_YORK, LONDON = "America/New_York", "Europe/London"
Z = dt.UTC


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=Z)


# (local date and time, expected UTC in New York, expected UTC in London). Transactional, so quiet hours
# (08:00-20:00 by default) do not move these night-time instants: the DST rule itself is what is checked.
CASES = [
    # New York springs forward at 02:00 → 03:00: 02:30 does not exist there; the first valid instant is 03:00 EDT.
    ("2027-03-14 02:30", _utc("2027-03-14 07:00"), _utc("2027-03-14 02:30")),
    # New York falls back: 01:30 happens twice; the first (EDT, -4) is taken.
    ("2027-11-07 01:30", _utc("2027-11-07 05:30"), _utc("2027-11-07 01:30")),
    # London springs forward at 01:00 → 02:00: 01:30 moves to 02:00 BST = 01:00Z.
    ("2027-03-28 01:30", _utc("2027-03-28 05:30"), _utc("2027-03-28 01:00")),
    # London falls back at 02:00 → 01:00: 01:30 twice; the first (BST, +1) is 00:30Z.
    ("2027-10-31 01:30", _utc("2027-10-31 05:30"), _utc("2027-10-31 00:30")),
]


@pytest.mark.parametrize(("local", "new_york", "london"), CASES)
def test_local_time_is_read_in_each_zone_and_survives_dst(
    api: TestClient, runtime: Runtime, local: str, new_york: dt.datetime, london: dt.datetime
) -> None:
    _template(api)
    ny = _subscribed(api, "ny@example.com", first_name="Nye", timezone=NEW_YORK)
    ldn = _subscribed(api, "ldn@example.com", first_name="Lou", timezone=LONDON)
    date, time = local.split()
    body: dict[str, Any] = {
        "name": "DST",
        "template_id": "winter-sale",
        "segment_id": _segment(runtime, EVERYONE),
        "channels": ["email"],
        "message_class": "transactional",
        "schedule": {"kind": "local_time", "date": date, "time": time},
    }
    cid = api.post("/api/campaigns", json=body).json()["id"]
    sim = {r["person_id"]: r for r in api.get(f"/api/campaigns/{cid}/simulation").json()["rows"]}
    assert dt.datetime.fromisoformat(sim[ny]["send_at"]) == new_york
    assert dt.datetime.fromisoformat(sim[ldn]["send_at"]) == london
    assert sim[ny]["zone"] == NEW_YORK and sim[ldn]["zone"] == LONDON
    # The local reading is the instant in the person's zone (a gap time shows the first valid one after it).
    shown = dt.datetime.fromisoformat(sim[ny]["local_send_at"])
    assert shown == new_york and shown.utcoffset() == new_york.astimezone(ZoneInfo(NEW_YORK)).utcoffset()
    _launch(api, cid)
    written = {r["person_id"]: r["available_at"] for r in _rows(runtime, cid)}
    assert written == {ny: new_york, ldn: london}


def test_a_local_time_already_past_sends_now_and_a_spread_stays_in_its_window(
    api: TestClient, runtime: Runtime
) -> None:
    _template(api)
    people = [_subscribed(api, f"p{i}@example.com", first_name=f"P{i}", timezone=LONDON) for i in range(6)]
    now = runtime.clock.now()  # 2026-11-22 12:00Z, noon in London
    past = {"kind": "local_time", "date": "2026-11-01", "time": "09:00"}
    base = {"template_id": "winter-sale", "segment_id": _segment(runtime, EVERYONE), "channels": ["email"]}
    past_id = api.post("/api/campaigns", json=base | {"name": "Past", "schedule": past}).json()["id"]
    _launch(api, past_id)
    assert {r["available_at"] for r in _rows(runtime, past_id)} == {now}

    spread = {"kind": "local_time", "date": "2026-11-23", "time": "10:00", "spread_minutes": 60}
    spread_id = api.post("/api/campaigns", json=base | {"name": "Spread", "schedule": spread}).json()["id"]
    sim = api.get(f"/api/campaigns/{spread_id}/simulation").json()["rows"]
    starts = [dt.datetime.fromisoformat(r["send_at"]) for r in sim]
    ten = dt.datetime(2026, 11, 23, 10, 0, tzinfo=Z)  # London is on GMT in November
    assert all(ten <= s < ten + dt.timedelta(minutes=60) for s in starts)
    assert len(set(starts)) > 1  # spread, not one burst
    _launch(api, spread_id)
    assert sorted(r["available_at"] for r in _rows(runtime, spread_id)) == sorted(starts)
    assert len(people) == len(starts)


def test_a_send_rate_paces_rows_from_the_launch_instant(api: TestClient, runtime: Runtime) -> None:
    _template(api)
    for i in range(5):
        _subscribed(api, f"r{i}@example.com", first_name=f"R{i}", timezone=LONDON)
    base = {"template_id": "winter-sale", "segment_id": _segment(runtime, EVERYONE), "channels": ["email"]}
    cid = api.post("/api/campaigns", json=base | {"name": "Paced", "send_rate": 2}).json()["id"]
    _launch(api, cid)
    now = runtime.clock.now()
    assert [r["available_at"] for r in _rows(runtime, cid)] == [now + dt.timedelta(seconds=30 * i) for i in range(5)]
