"""Ledger benchmark: claim + complete throughput with 1 and N worker processes, 0 duplicates / 0 lost asserted."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from herald.core.clock import SystemClock
from herald.db import migrate
from herald.db.contacts_tables import people
from herald.db.delivery_tables import messages
from herald.db.engine import create_db_engine
from herald.delivery import ledger

LEASE = dt.timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class LedgerResult:
    engine: str
    processes: int
    batch: int
    count: int
    seconds: float
    duplicates: int
    lost: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds


@contextmanager
def scratch_database(kind: str, pg_admin_url: str | None) -> Iterator[str]:
    """A fresh, migrated database: a temp SQLite file, or a throwaway PostgreSQL database."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            _migrate(url)
            yield url
        return
    if not pg_admin_url:
        raise ValueError("PostgreSQL needs --pg-url (or HERALD_TEST_PG_URL)")
    name = f"herald_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        url = make_url(pg_admin_url).set(database=name).render_as_string(False)
        _migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def _migrate(url: str) -> None:
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    engine.dispose()


def fill(url: str, count: int) -> None:
    now = SystemClock().now()
    engine = create_db_engine(url)
    with engine.begin() as conn:
        person = conn.execute(
            people.insert()
            .values(attributes={}, tags=[], locked_fields=[], created_at=now, updated_at=now)
            .returning(people.c.id)
        ).scalar_one()
        rows = [
            {
                "person_id": person,
                "message_key": f"bench-{i}",
                "message_class": "transactional",
                "status": "queued",
                "status_rank": ledger.rank("queued"),
                "releasable": False,
                "channels": ["email"],
                "plan_index": 0,
                "skips": [],
                "addresses": {"email": "bench@bench.invalid"},
                "content": {"email": {"subject": "s", "text": "t"}},
                "zones": [],
                "zone_source": "unknown",
                "available_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for i in range(count)
        ]
        for start in range(0, count, 5000):
            conn.execute(messages.insert(), rows[start : start + 5000])
    engine.dispose()


def _drain(url: str, batch: int, worker: str) -> list[int]:
    """One worker process: claim a batch, complete it (two transactions per batch), until nothing is due."""
    engine = create_db_engine(url)
    clock = SystemClock()
    seen: list[int] = []
    try:
        while True:
            with engine.begin() as conn:
                claimed = ledger.claim(conn, now=clock.now(), worker=worker, lease=LEASE, limit=batch)
            if not claimed:
                return seen
            with engine.begin() as conn:
                done = [ledger.Completion(c.id, c.token, {"status": "sent", "sent_at": clock.now()}) for c in claimed]
                ledger.complete(conn, done, clock.now())
            seen.extend(c.id for c in claimed)
    finally:
        engine.dispose()


def run_one(kind: str, processes: int, count: int, batch: int, pg_admin_url: str | None) -> LedgerResult:
    with scratch_database(kind, pg_admin_url) as url:
        fill(url, count)
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes) as pool:
            started = time.perf_counter()
            results = pool.starmap(_drain, [(url, batch, f"bench-{i}") for i in range(processes)])
            seconds = time.perf_counter() - started
        engine = create_db_engine(url)
        with engine.connect() as conn:
            ids = list(conn.execute(sa.select(messages.c.id)).scalars())
            unsent = conn.scalar(sa.select(sa.func.count()).select_from(messages).where(messages.c.status != "sent"))
        engine.dispose()
    counts = Counter(i for part in results for i in part)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    lost = len(set(ids) - set(counts)) + int(unsent or 0)
    if duplicates or lost:
        raise AssertionError(f"{kind} x{processes}: {duplicates} duplicates, {lost} lost")
    return LedgerResult(kind, processes, batch, count, seconds, duplicates, lost)
