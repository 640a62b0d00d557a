"""Segment count benchmark: seed N people in bulk, time count_audience for representative definitions."""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from herald.bench.ledger import scratch_database
from herald.consent.ledger import rebuild_states
from herald.core.clock import SystemClock
from herald.db.bulk import bulk_insert
from herald.db.consent_tables import consent_events
from herald.db.contacts_tables import identifiers, people
from herald.db.engine import create_db_engine
from herald.segments.audience import count_audience, parse_definition

CHUNK = 20_000
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "BR", "IN")
ZONES = ("America/New_York", "Europe/London", "Europe/Berlin", "Europe/Paris", "Asia/Kolkata", None)
PLANS = ("free", "free", "free", "pro", "team")
TAGS = ("vip", "beta", "newsletter", "churn-risk", "partner")

# The four shapes the issue names: country + consent; attribute + tag; a not-group; created within.
DEFINITIONS: dict[str, dict[str, Any]] = {
    "country + consent": {
        "all": [{"type": "country", "in": ["FR", "DE"]}, {"type": "consent", "channel": "email"}],
    },
    "attribute + tag": {
        "all": [{"type": "attribute", "name": "plan", "op": "equals", "value": "pro"}, {"type": "tag", "tag": "vip"}],
    },
    "not-group": {
        "not": {
            "any": [
                {"type": "identifier", "kind": "phone"},
                {"type": "attribute", "name": "age", "op": "less", "value": 30},
            ]
        }
    },
    "created within": {"type": "created", "op": "within_days", "days": 90},
}

RAW = "SELECT count(*) FROM people WHERE status = 'active'"


@dataclass
class SegmentBench:
    engine: str
    people: int
    seed_seconds: float
    states_seconds: float
    raw_seconds: float
    raw_count: int
    timings: dict[str, list[float]] = field(default_factory=dict)
    # This process's CPU time per count: on SQLite the query itself; on PostgreSQL only the client side.
    cpu: dict[str, list[float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [
            f"{self.engine}: {self.people:,} people seeded in {self.seed_seconds:.1f} s "
            f"(consent state folded from the ledger in {self.states_seconds:.1f} s)",
            f"  raw limit  {RAW}: {self.raw_seconds * 1000:,.0f} ms ({self.raw_count:,})",
        ]
        for name, times in self.timings.items():
            best, median = min(times), statistics.median(times)
            out.append(
                f"  {name:18} {median * 1000:7,.0f} ms median, {best * 1000:,.0f} ms best "
                f"({self.counts[name]:,} people), CPU {statistics.median(self.cpu[name]) * 1000:,.0f} ms"
                f"  ratio to raw {median / self.raw_seconds:.1f}x"
                f"  {'OK' if median <= 1.0 else 'OVER'} (target <= 1 s)"
            )
        return out


def _people_rows(start: int, stop: int, now: dt.datetime, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for pid in range(start, stop):
        tags = [t for t in TAGS if rng.random() < 0.15]
        attributes = {"plan": rng.choice(PLANS), "age": str(rng.randint(18, 80)), "city": f"city-{rng.randint(1, 500)}"}
        status = "active" if rng.random() < 0.97 else "merged"
        created = now - dt.timedelta(days=rng.random() * 730)
        yield (
            pid,
            status,
            f"First{pid % 997}",
            f"Last{pid % 991}",
            rng.choice(COUNTRIES),
            rng.choice(ZONES),
            attributes,
            tags,
            [],
            created,
            created,
        )


PEOPLE_COLUMNS = (
    "id",
    "status",
    "first_name",
    "last_name",
    "country",
    "timezone",
    "attributes",
    "tags",
    "locked_fields",
    "created_at",
    "updated_at",
)


def seed(conn: sa.Connection, count: int, now: dt.datetime, rng: random.Random) -> None:
    """People with e-mail (90 %) and phone (50 %) identifiers, attributes, tags, and consent events."""
    for start in range(1, count + 1, CHUNK):
        stop = min(start + CHUNK, count + 1)
        bulk_insert(conn, people, PEOPLE_COLUMNS, list(_people_rows(start, stop, now, rng)))
        idents: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        for pid in range(start, stop):
            if rng.random() < 0.9:
                idents.append((pid, "email", f"p{pid}@bench.invalid", f"p{pid}@bench.invalid", now))
            if rng.random() < 0.5:
                idents.append((pid, "phone", f"+1555{pid:07d}", f"+1555{pid:07d}", now))
            if rng.random() < 0.6:
                at = now - dt.timedelta(days=rng.random() * 700)
                events.append((pid, "email", "marketing", "subscribed", False, "bench", at, now))
                if rng.random() < 0.1:  # some opted out later, and a few were re-subscribed by an import
                    events.append((pid, "email", "all", "unsubscribed", False, "bench", at + dt.timedelta(days=1), now))
                    if rng.random() < 0.5:
                        later = at + dt.timedelta(days=2)
                        events.append((pid, "email", "marketing", "subscribed", False, "bench", later, now))
            if rng.random() < 0.2:
                events.append((pid, "sms", "marketing", "subscribed", True, "bench", now, now))
        bulk_insert(conn, identifiers, ("person_id", "kind", "value", "key", "created_at"), idents)
        bulk_insert(
            conn,
            consent_events,
            ("person_id", "channel", "purpose", "kind", "explicit", "source", "occurred_at", "recorded_at"),
            events,
        )


def _settle(engine: sa.Engine) -> None:
    """What a live database has after autovacuum: statistics, and (PostgreSQL) a visibility map."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # ids were given explicitly: move the identity past them
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('people', 'id'), (SELECT max(id) FROM people))")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def run(kind: str, count: int, repeat: int, pg_admin_url: str | None, seed_value: int = 7) -> SegmentBench:
    now = SystemClock().now()
    rng = random.Random(seed_value)
    with scratch_database(kind, pg_admin_url) as url:
        engine = create_db_engine(url)
        try:
            started = time.perf_counter()
            with engine.begin() as conn:
                seed(conn, count, now, rng)
            seeded = time.perf_counter()
            with engine.begin() as conn:
                rebuild_states(conn)
            states = time.perf_counter() - seeded
            _settle(engine)
            result = SegmentBench(kind, count, seeded - started, states, 0.0, 0)
            with engine.connect() as conn:
                raw: list[float] = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    result.raw_count = int(conn.exec_driver_sql(RAW).scalar_one())
                    raw.append(time.perf_counter() - t0)
                result.raw_seconds = statistics.median(raw)
                for name, data in DEFINITIONS.items():
                    definition = parse_definition(data)
                    times, cpu = [], []
                    for _ in range(repeat):
                        t0, c0 = time.perf_counter(), time.process_time()
                        result.counts[name] = count_audience(conn, definition, now=now)
                        times.append(time.perf_counter() - t0)
                        cpu.append(time.process_time() - c0)
                    result.timings[name] = times
                    result.cpu[name] = cpu
        finally:
            engine.dispose()
    return result
