"""Send benchmark: raw aiosmtplib → server with pre-built messages, then Herald end to end over its real HTTP API.

Herald runs as in production: `herald serve --no-worker` (uvicorn) and `herald worker` as separate processes on
a throwaway database; this process only generates load (concurrent `POST /api/messages` with httpx) and watches
the ledger. Intake and delivery overlap, as they do in production.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa

from herald.apikeys.service import create_key
from herald.bench.smtp_raw import raw_smtp_throughput
from herald.core.actor import SYSTEM
from herald.core.clock import SystemClock
from herald.core.settings import Settings
from herald.db import migrate
from herald.db.delivery_tables import messages
from herald.db.engine import create_db_engine
from herald.db.unit_of_work import unit_of_work

RECIPIENTS = 1000  # distinct people: the first message to each creates the contact, later ones find it
TEXT = "Hello,\n\nYour order has shipped and should arrive within three working days.\n" * 12
HERALD = str(Path(sys.executable).with_name("herald"))


@dataclass(frozen=True, slots=True)
class SendResult:
    count: int
    raw_rate: float
    intake_seconds: float  # first request → last 202
    end_to_end_seconds: float  # first request → last row sent
    clients: int
    worker_concurrency: int

    @property
    def intake_rate(self) -> float:
        return self.count / self.intake_seconds

    @property
    def end_to_end_rate(self) -> float:
        return self.count / self.end_to_end_seconds

    def lines(self, connections: int) -> list[str]:
        return [
            f"raw limit (pre-built, {connections} connections):           {self.raw_rate:,.0f} msgs/s",
            f"herald HTTP intake ({self.clients} clients, worker running):    {self.intake_rate:,.0f} msgs/s",
            f"herald end to end (POST /api/messages → ledger → worker → SMTP, "
            f"worker concurrency {self.worker_concurrency}): {self.end_to_end_rate:,.0f} msgs/s",
            f"ratio end to end / raw: {self.end_to_end_rate / self.raw_rate:.0%}",
        ]


def _payload(i: int) -> dict[str, object]:
    return {
        "email": f"bench{i % RECIPIENTS}@bench.invalid",  # non-local: the CI postfix discards it
        "class": "transactional",
        "channels": ["email"],
        "content": {"email": {"subject": f"Bench {i}", "text": TEXT, "html": f"<p>Order {i} has shipped.</p>"}},
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _herald(env: dict[str, str], port: int, concurrency: int, log: Path) -> Iterator[str]:
    """`herald serve --no-worker` and one `herald worker`, stopped (SIGTERM) on exit."""
    with log.open("ab") as out:
        procs = [
            subprocess.Popen([HERALD, "serve", "--no-worker", "--port", str(port)], env=env, stdout=out, stderr=out),
            subprocess.Popen([HERALD, "worker", "--concurrency", str(concurrency)], env=env, stdout=out, stderr=out),
        ]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise RuntimeError(f"herald did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.1)
        yield base
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


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


def _sent(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(messages).where(messages.c.status == "sent")
        return int(conn.scalar(query) or 0)


def _wait_sent(engine: sa.Engine, count: int, log: Path) -> None:
    last, stalled_since = -1, time.monotonic()
    while (sent := _sent(engine)) < count:
        if sent != last:
            last, stalled_since = sent, time.monotonic()
        elif time.monotonic() - stalled_since > 60:
            raise AssertionError(f"only {sent} of {count} messages were sent; log tail:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


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


def end_to_end(
    count: int, host: str, port: int, connections: int, database_url: str | None, clients: int
) -> tuple[float, float]:
    """(seconds to the last 202, seconds to the last row sent), both from the first request."""
    concurrency = connections * 4
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=database_url or "", default_region="US")
        engine = create_db_engine(settings.resolved_database_url)
        try:
            migrate.upgrade(engine)
            with unit_of_work(engine, SystemClock(), SYSTEM) as uow:
                secret = create_key(uow, "bench").secret
            log = Path(tmp) / "herald.log"
            env = _env(settings, host, port, connections)
            with _herald(env, _free_port(), concurrency, log) as base:
                started = time.perf_counter()
                try:
                    asyncio.run(_post_all(base, secret, count, clients))
                except RuntimeError as exc:
                    raise RuntimeError(f"{exc}\nserver log tail:\n{log.read_text()[-4000:]}") from None
                intake = time.perf_counter() - started
                _wait_sent(engine, count, log)
                return intake, time.perf_counter() - started
        finally:
            engine.dispose()


def run(count: int, host: str, port: int, connections: int, database_url: str | None, clients: int = 16) -> SendResult:
    raw = asyncio.run(raw_smtp_throughput(host, port, count, connections))
    intake, total = end_to_end(count, host, port, connections, database_url, clients)
    return SendResult(count, raw, intake, total, clients, connections * 4)
