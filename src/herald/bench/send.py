"""Send benchmark: queue N e-mails in the ledger, then time `herald worker` draining them into an SMTP relay,
against raw aiosmtplib pushing pre-built messages over 8 connections to the same relay in the same run.

The relay is an independent aiosmtpd sink in its own process that counts what it accepted (`bench/sink.py`),
unless `--smtp HOST:PORT` names another one (the CI postfix). With the sink, both rates are measured by the
relay itself: messages accepted between its first and its last acceptance. Herald runs as deployed: one
`herald worker` process (SMTP pool of `connections`), started once the queue is committed. The old
measurement (HTTP intake and delivery overlapped) stays available as `end_to_end`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from herald.apikeys.service import create_key
from herald.bench.sink import CountingSink, cpu_seconds, free_port
from herald.bench.smtp_raw import HTML, TEXT, raw_smtp_throughput
from herald.core.actor import SYSTEM
from herald.core.clock import SystemClock
from herald.core.settings import Settings
from herald.db import migrate
from herald.db.contacts_tables import people
from herald.db.delivery_tables import message_attempts, messages
from herald.db.engine import create_db_engine
from herald.db.unit_of_work import unit_of_work
from herald.delivery import ledger
from herald.templates.store import create_template

RECIPIENTS = 1000  # end to end: distinct people; the first message to each creates the contact
HERALD = str(Path(sys.executable).with_name("herald"))
CHUNK = 2000
TEMPLATE_ID = "bench-order-shipped"


@dataclass(frozen=True, slots=True)
class DrainResult:
    count: int
    relay: str
    raw_rate: float  # pre-built messages, `connections` connections, nothing else
    drain_rate: float  # herald worker: queued rows → relay
    worker_seconds: float  # from starting the worker process (imports included) to the last message held
    concurrency: int
    templated: bool
    worker_cpu: float  # CPU seconds the worker used from the relay's first message on (start-up excluded)
    raw_sink_cpu: float | None  # CPU seconds the sink spent on the raw run (None: external relay)
    drain_sink_cpu: float | None

    def lines(self, connections: int) -> list[str]:
        shape = "rendered at claim from a template version" if self.templated else "content stored on the row"
        return [
            f"relay: {self.relay}",
            f"raw limit (pre-built, {connections} connections):             {self.raw_rate:,.0f} msgs/s",
            f"herald drain ({self.count:,} queued, {shape}; `herald worker --concurrency {self.concurrency}`, "
            f"SMTP pool {connections}): {self.drain_rate:,.0f} msgs/s",
            f"  (worker process start → last message held: {self.worker_seconds:.1f} s, "
            f"{self.count / self.worker_seconds:,.0f} msgs/s including interpreter start-up)",
            f"  worker CPU during the drain: {self.worker_cpu:.1f} s, {self.worker_cpu / self.count * 1e6:,.0f} µs "
            "per message",
            *(
                [
                    f"  sink CPU per message: raw {self.raw_sink_cpu / self.count * 1e6:,.0f} µs, "
                    f"drain {self.drain_sink_cpu / self.count * 1e6:,.0f} µs"
                ]
                if self.raw_sink_cpu is not None and self.drain_sink_cpu is not None
                else []
            ),
            *self._utilisation(),
            f"ratio drain / raw: {self.drain_rate / self.raw_rate:.2f}",
        ]

    def _utilisation(self) -> list[str]:
        """Each process's CPU over its run's window, in % of one core: below ~100 % for the busier of worker and
        sink (with cores to spare) means the pipeline stalls; with a loaded machine, both are starved."""
        drain_window, raw_window = (self.count - 1) / self.drain_rate, (self.count - 1) / self.raw_rate
        line = f"  utilisation (% of a core over the drain): worker {100 * self.worker_cpu / drain_window:.0f} %"
        if self.raw_sink_cpu is not None and self.drain_sink_cpu is not None:
            line += (
                f", sink {100 * self.drain_sink_cpu / drain_window:.0f} % "
                f"(raw run: sink {100 * self.raw_sink_cpu / raw_window:.0f} %)"
            )
        load = os.getloadavg()
        return [line, f"  load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"]


# --- the queue ---------------------------------------------------------------------------------------------


def queue(engine: sa.Engine, count: int, *, templated: bool) -> None:
    """N distinct people and one queued ~2.3 kB e-mail each, straight into the ledger in bulk."""
    clock = SystemClock()
    now = clock.now()
    if templated:
        parts = {
            "email.subject": "Bench {{ n }}",
            "email.text": TEXT.replace("{i}", "{{ first_name }}"),
            "email.html": HTML.replace("{i}", "{{ first_name }}"),
        }
        create_template(engine, clock, TEMPLATE_ID, parts, {})
    with engine.begin() as conn:
        person = {"attributes": {}, "tags": [], "locked_fields": [], "created_at": now, "updated_at": now}
        for start in range(0, count, CHUNK):
            conn.execute(people.insert(), [person] * min(CHUNK, count - start))
        ids = list(conn.execute(sa.select(people.c.id).order_by(people.c.id).limit(count)).scalars())
        for start in range(0, count, CHUNK):
            rows = [_row(i, ids[i], now, templated) for i in range(start, min(count, start + CHUNK))]
            conn.execute(messages.insert(), rows)


def _row(i: int, person_id: int, now: dt.datetime, templated: bool) -> dict[str, Any]:
    content: dict[str, Any] = {"email": {"subject": f"Bench {i}", "text": TEXT.format(i=i), "html": HTML.format(i=i)}}
    return {
        "person_id": person_id,
        "message_key": f"bench-{i}",
        "message_class": "transactional",
        "status": "queued",
        "status_rank": ledger.rank("queued"),
        "releasable": False,
        "channels": ["email"],
        "plan_index": 0,
        "skips": [],
        "addresses": {"email": f"p{i}@bench.invalid"},  # non-local: the CI postfix discards it
        "content": {} if templated else content,
        "template_id": TEMPLATE_ID if templated else None,
        "template_version": 1 if templated else None,
        "variables": {"first_name": f"P{i}", "n": i} if templated else None,
        "zones": [],
        "zone_source": "unknown",
        "available_at": now,
        "created_at": now,
        "updated_at": now,
    }


# --- running herald ----------------------------------------------------------------------------------------


def _env(settings: Settings, host: str, port: int, connections: int) -> dict[str, str]:
    return os.environ | {
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_DATABASE_URL": settings.resolved_database_url,
        "HERALD_SMTP_HOST": host,
        "HERALD_SMTP_PORT": str(port),
        "HERALD_SMTP_SECURITY": "plain",
        "HERALD_SMTP_POOL_SIZE": str(connections),
        "HERALD_EMAIL_FROM": "herald-bench@localhost",
        "HERALD_EMBEDDED_SIMULATOR": "false",
        "HERALD_QUIET_EXEMPT_TRANSACTIONAL": "true",
        "HERALD_DEFAULT_REGION": "US",
        "HERALD_BACKUP_SCHEDULE": "off",
        "HERALD_DELIVERY_BATCH_SIZE": "500",
    }


@contextmanager
def _database(database_url: str | None) -> Iterator[tuple[Settings, sa.Engine]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=database_url or "", default_region="US")
        engine = create_db_engine(settings.resolved_database_url)
        try:
            migrate.upgrade(engine)
            yield settings, engine
        finally:
            engine.dispose()


@contextmanager
def _processes(commands: list[list[str]], env: dict[str, str], log: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start the commands; SIGTERM (then SIGKILL) on exit."""
    with log.open("ab") as out:
        procs = [subprocess.Popen(command, env=env, stdout=out, stderr=out) for command in commands]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def _profiled(worker: subprocess.Popen[bytes], profile: Path | None, log: Path) -> Iterator[None]:
    """py-spy attached to the running worker; stopped with SIGINT (so it writes the profile) before the worker."""
    if profile is None:
        yield
        return
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy)")
    # Collapsed stacks for a .txt file (easy to sum by function), speedscope JSON otherwise.
    kind = "raw" if profile.suffix == ".txt" else "speedscope"
    command = [py_spy, "record", "--rate", "250", "--format", kind, "-o", str(profile), "--pid", str(worker.pid)]
    with log.open("ab") as out:
        spy = subprocess.Popen(command, stdout=out, stderr=out)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def _count(engine: sa.Engine, status: str) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(messages).where(messages.c.status == status)
        return int(conn.scalar(query) or 0)


def _wait_sent(engine: sa.Engine, count: int, log: Path) -> None:
    last, stalled_since = -1, time.monotonic()
    while (sent := _count(engine, "sent")) < count:
        if sent != last:
            last, stalled_since = sent, time.monotonic()
        elif time.monotonic() - stalled_since > 60:
            raise RuntimeError(f"only {sent} of {count} messages were sent; log tail:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def _ledger_window(engine: sa.Engine) -> float:
    """First attempt started → last row sent, by the worker's own clock (an external relay cannot be asked)."""
    with engine.connect() as conn:
        first = conn.scalar(sa.select(sa.func.min(message_attempts.c.started_at)))
        last = conn.scalar(sa.select(sa.func.max(messages.c.sent_at)))
    assert first is not None and last is not None
    return float((last - first).total_seconds())


def drain(
    count: int,
    relay: tuple[str, int],
    sink: CountingSink | None,
    connections: int,
    database_url: str | None,
    *,
    concurrency: int,
    templated: bool,
    profile: Path | None = None,
    worker_src: Path | None = None,
) -> tuple[float, float, float]:
    """(messages/s from the relay's first to its last acceptance, seconds from worker start to the last one,
    the worker's CPU seconds from the first message on — from its start with an external relay)."""
    cpu_start = 0.0
    with _database(database_url) as (settings, engine):
        queue(engine, count, templated=templated)
        log = settings.data_dir / "worker.log"
        env = _env(settings, relay[0], relay[1], connections)
        if worker_src is not None:
            env["PYTHONPATH"] = str(worker_src)  # A/B: the worker from another checkout's src/, same schema
        if sink is not None:
            sink.reset()
        started = time.monotonic()
        command = [HERALD, "worker", "--concurrency", str(concurrency)]
        with _processes([command], env, log) as [worker], _profiled(worker, profile, log):
            try:
                if sink is not None:
                    while sink.count == 0 and worker.poll() is None:
                        time.sleep(0.005)
                    cpu_start = cpu_seconds(worker.pid)  # start-up done: from here on it is the drain
                    sink.wait_for(count, alive=lambda: worker.poll() is None)
                else:
                    _wait_sent(engine, count, log)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\nworker log tail:\n{log.read_text()[-3000:]}") from None
            seconds = time.monotonic() - started
            _wait_sent(engine, count, log)  # the ledger catches up with the relay (the last group commit)
            cpu = cpu_seconds(worker.pid) - cpu_start
        if sink is not None:
            time.sleep(0.2)
            if sink.count != count:
                raise AssertionError(f"the relay holds {sink.count} messages for {count} queued rows")
            first, last = sink.window()
            return (count - 1) / (last - first), seconds, cpu
        return count / _ledger_window(engine), seconds, cpu


def _raw(relay: tuple[str, int], sink: CountingSink | None, count: int, connections: int) -> float:
    if sink is None:
        return asyncio.run(raw_smtp_throughput(relay[0], relay[1], count, connections))
    sink.reset()
    asyncio.run(raw_smtp_throughput(relay[0], relay[1], count, connections))
    sink.wait_for(count)
    first, last = sink.window()
    return (count - 1) / (last - first)


def run(
    count: int,
    smtp: tuple[str, int] | None,
    connections: int,
    database_url: str | None,
    *,
    concurrency: int,
    templated: bool = False,
    profile: Path | None = None,
    worker_src: Path | None = None,
) -> DrainResult:
    with CountingSink() if smtp is None else nullcontext() as sink:
        relay = ("127.0.0.1", sink.port) if sink is not None else smtp
        assert relay is not None
        before = sink.cpu() if sink is not None else 0.0
        raw = _raw(relay, sink, count, connections)
        middle = sink.cpu() if sink is not None else 0.0
        rate, seconds, cpu = drain(
            count,
            relay,
            sink,
            connections,
            database_url,
            concurrency=concurrency,
            templated=templated,
            profile=profile,
            worker_src=worker_src,
        )
        after = sink.cpu() if sink is not None else 0.0
    name = "aiosmtpd counting sink (separate process)" if smtp is None else f"{relay[0]}:{relay[1]}"
    raw_cpu, drain_cpu = (middle - before, after - middle) if sink is not None else (None, None)
    return DrainResult(count, name, raw, rate, seconds, concurrency, templated, cpu, raw_cpu, drain_cpu)


# --- the old measurement: HTTP intake and delivery overlapped ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndToEndResult:
    count: int
    raw_rate: float
    intake_seconds: float  # first request → last 202
    end_to_end_seconds: float  # first request → last row sent
    clients: int
    worker_concurrency: int

    def lines(self, connections: int) -> list[str]:
        intake, total = self.count / self.intake_seconds, self.count / self.end_to_end_seconds
        return [
            f"raw limit (pre-built, {connections} connections):           {self.raw_rate:,.0f} msgs/s",
            f"herald HTTP intake ({self.clients} clients, worker running):    {intake:,.0f} msgs/s",
            f"herald end to end (POST /api/messages → ledger → worker → SMTP, "
            f"worker concurrency {self.worker_concurrency}): {total:,.0f} msgs/s",
            f"ratio end to end / raw: {total / self.raw_rate:.0%}",
        ]


def _payload(i: int) -> dict[str, object]:
    return {
        "email": f"bench{i % RECIPIENTS}@bench.invalid",  # non-local: the CI postfix discards it
        "class": "transactional",
        "channels": ["email"],
        "content": {"email": {"subject": f"Bench {i}", "text": TEXT.format(i=i), "html": HTML.format(i=i)}},
    }


async def _post_all(base: str, secret: str, count: int, clients: int) -> None:
    headers = {"Authorization": f"Bearer {secret}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:

        async def one_client(start: int) -> None:
            for i in range(start, count, clients):
                reply = await client.post("/api/messages", json=_payload(i), headers={"Idempotency-Key": f"b{i}"})
                if reply.status_code != 202:
                    raise RuntimeError(f"POST /api/messages answered {reply.status_code}: {reply.text[:500]}")

        await asyncio.gather(*(one_client(c) for c in range(clients)))


def _wait_healthy(base: str, procs: list[subprocess.Popen[bytes]], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"herald did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.1)


def end_to_end(
    count: int, smtp: tuple[str, int] | None, connections: int, database_url: str | None, clients: int = 16
) -> EndToEndResult:
    """`herald serve --no-worker` + one `herald worker` as processes; 16 HTTP clients POST while it delivers."""
    concurrency = connections * 4
    with CountingSink() if smtp is None else nullcontext() as sink, _database(database_url) as (settings, engine):
        relay = ("127.0.0.1", sink.port) if sink is not None else smtp
        assert relay is not None
        raw = asyncio.run(raw_smtp_throughput(relay[0], relay[1], count, connections))
        with unit_of_work(engine, SystemClock(), SYSTEM) as uow:
            secret = create_key(uow, "bench").secret
        log = settings.data_dir / "herald.log"
        port = free_port()
        commands = [
            [HERALD, "serve", "--no-worker", "--port", str(port)],
            [HERALD, "worker", "--concurrency", str(concurrency)],
        ]
        with _processes(commands, _env(settings, relay[0], relay[1], connections), log) as procs:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, procs, log)
            started = time.perf_counter()
            try:
                asyncio.run(_post_all(base, secret, count, clients))
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\nserver log tail:\n{log.read_text()[-4000:]}") from None
            intake = time.perf_counter() - started
            _wait_sent(engine, count, log)
            total = time.perf_counter() - started
    return EndToEndResult(count, raw, intake, total, clients, concurrency)
