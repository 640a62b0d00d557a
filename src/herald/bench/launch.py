"""Campaign launch benchmark: seed N people in bulk, launch to all of them, time planned-and-queued against the raw
limit measured in the same run (enqueue_many of N pre-built ledger rows, chunk by chunk)."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from herald.bench.ledger import scratch_database
from herald.bench.segments import seed
from herald.campaigns import service
from herald.campaigns.launch import CHUNK
from herald.consent.ledger import rebuild_states
from herald.core.actor import CLI
from herald.core.clock import SystemClock
from herald.core.settings import Settings
from herald.db import migrate
from herald.db.engine import create_db_engine
from herald.db.runtime import Runtime
from herald.db.unit_of_work import unit_of_work
from herald.delivery import bulk_plan
from herald.delivery.ledger import NewMessage
from herald.jobs.kinds import job_kinds
from herald.jobs.runner import run_next_job
from herald.segments.service import create_segment
from herald.templates.store import create_template

TEMPLATE_PARTS = {
    "email.subject": "{{ first_name }}, the winter sale starts now",
    "email.text": "Dear {{ first_name }} {{ last_name }},\n\nOur winter sale is on in {{ city }}.\n",
}


@dataclass
class LaunchBench:
    engine: str
    recipients: int
    seed_seconds: float
    raw_seconds: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process only (on PostgreSQL the server's work is not in it)
    raw_cpu_seconds: float = 0.0
    planned: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        target = "OK" if self.seconds <= 10 else "OVER"
        return [
            f"{self.engine}: {self.recipients:,} people seeded in {self.seed_seconds:.1f} s",
            f"  raw limit  enqueue_many of {self.recipients:,} pre-built rows ({CHUNK:,} per transaction): "
            f"{self.raw_seconds:.2f} s ({self.recipients / self.raw_seconds:,.0f} rows/s; "
            f"CPU {self.raw_cpu_seconds:.2f} s)",
            f"  herald     launch (freeze + plan + queue) of {self.planned:,} recipients: {self.seconds:.2f} s "
            f"({self.planned / self.seconds:,.0f} recipients/s; CPU {self.cpu_seconds:.2f} s)  "
            f"{target} (target <= 10 s)",
            f"  ratio herald / raw time: {self.seconds / self.raw_seconds:.1f}x",
            "  rows: " + "  ".join(f"{k}={v:,}" for k, v in sorted(self.by_status.items())),
            "  held: " + "  ".join(f"{k}={v:,}" for k, v in sorted(self.by_reason.items())),
        ]


@contextmanager
def bench_runtime(kind: str, database_url: str | None, pg_admin_url: str | None) -> Iterator[Runtime]:
    """A runtime on a fresh, migrated database (a given empty one, or a scratch SQLite / PostgreSQL one)."""
    with tempfile.TemporaryDirectory() as tmp, _database(kind, database_url, pg_admin_url) as url:
        engine = create_db_engine(url)
        try:
            settings = Settings(data_dir=Path(tmp), database_url=url, default_region="US")
            yield Runtime(settings=settings, engine=engine, clock=SystemClock())
        finally:
            engine.dispose()


@contextmanager
def _database(kind: str, database_url: str | None, pg_admin_url: str | None) -> Iterator[str]:
    if database_url:
        engine = create_db_engine(database_url)
        migrate.upgrade(engine)
        engine.dispose()
        yield database_url
        return
    with scratch_database(kind, pg_admin_url) as url:
        yield url


def seed_audience(runtime: Runtime, recipients: int) -> tuple[int, float]:
    """People, identifiers and consent in bulk (the segments benchmark's population), a template and a draft
    campaign to everyone on e-mail; returns the campaign id and the seeding time."""
    started = time.perf_counter()
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        seed(conn, recipients, now, random.Random(7))
    with runtime.engine.begin() as conn:
        rebuild_states(conn)
    _settle(runtime.engine)
    create_template(runtime.engine, runtime.clock, "bench-winter", TEMPLATE_PARTS, {"city": "your city"})
    with unit_of_work(runtime.engine, runtime.clock, CLI) as uow:
        segment = create_segment(uow, "bench everyone", {"all": []})
        campaign = service.create_campaign(
            uow, name="Bench", template_id="bench-winter", segment_id=segment.id, channels=["email"]
        )
    return campaign.id, time.perf_counter() - started


def _settle(engine: sa.Engine) -> None:
    """Statistics (and on PostgreSQL the identity past the explicit ids), as a live database has them."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('people', 'id'), (SELECT max(id) FROM people))")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def raw_enqueue(runtime: Runtime, recipients: int) -> float:
    """The floor under a launch: N ready-made ledger rows through the same bulk insert, in launch-sized chunks."""
    now = runtime.clock.now()
    rows = [
        NewMessage(
            person_id=pid,
            message_key="bench:raw",
            message_class="marketing",
            status="queued",
            channels=["email"],
            addresses={"email": f"p{pid}@bench.invalid"},
            content={},
            available_at=now,
            template_id="bench-winter",
            template_version=1,
            variables={"first_name": f"First{pid % 997}", "last_name": f"Last{pid % 991}"},
            zones=["Europe/London"],
            zone_source="contact",
        )
        for pid in range(1, recipients + 1)
    ]
    started = time.perf_counter()
    for start in range(0, len(rows), CHUNK):
        with runtime.engine.begin() as conn:
            bulk_plan.enqueue_many(conn, rows[start : start + CHUNK], now)
    return time.perf_counter() - started


def run(kind: str, recipients: int, database_url: str | None, pg_admin_url: str | None) -> LaunchBench:
    with bench_runtime(kind, database_url, pg_admin_url) as runtime:
        campaign_id, seeded = seed_audience(runtime, recipients)
        result = LaunchBench(runtime.engine.dialect.name, recipients, seeded)
        cpu = time.process_time()
        result.raw_seconds = raw_enqueue(runtime, recipients)
        result.raw_cpu_seconds = time.process_time() - cpu
        cpu, started = time.process_time(), time.perf_counter()
        with unit_of_work(runtime.engine, runtime.clock, CLI) as uow:
            service.launch_campaign(uow, campaign_id)
        assert run_next_job(runtime, job_kinds())
        result.seconds = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu
        progress = service.campaign_progress(runtime.engine, campaign_id)
        if progress.job is None or progress.job["status"] != "done":
            raise AssertionError(f"the launch job did not finish: {progress.job}")
        result.planned = progress.planned
        result.by_status = dict(progress.by_status)
        result.by_reason = dict(progress.by_reason)
    return result
