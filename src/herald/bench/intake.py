"""Batch intake benchmark: POST /api/messages/batch (1,000 per call) against `herald serve --no-worker`.

Herald runs as in production, a separate uvicorn process on a throwaway database; this process only sends
the batches (a few concurrent httpx clients) and checks every item came back 202 and every row is there.
The raw limit, in the same run and on the same database, is `enqueue_many` of the same number of rows,
already planned, in the same chunks of 1,000 per transaction: the ledger write every accepted message
needs, with no HTTP, JSON, validation, recipient resolution or planning on top.
"""

from __future__ import annotations

import asyncio
import json
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
from herald.bench.ledger import scratch_database
from herald.core.actor import SYSTEM
from herald.core.clock import SystemClock
from herald.db.delivery_tables import messages
from herald.db.engine import create_db_engine
from herald.db.unit_of_work import unit_of_work
from herald.delivery import ledger
from herald.delivery.bulk_plan import enqueue_many

BATCH = 1000
TEXT = "Hello,\n\nYour order has shipped and should arrive within three working days.\n" * 12
HERALD = str(Path(sys.executable).with_name("herald"))


@dataclass(frozen=True, slots=True)
class IntakeResult:
    engine: str
    count: int
    recipients: int
    clients: int
    http_seconds: float  # first batch sent → last batch answered
    raw_rows: int
    raw_seconds: float  # enqueue_many of `raw_rows` pre-planned rows, 1,000 per transaction
    body_bytes: int  # one batch's JSON body
    server_cpu_seconds: float | None  # user + system CPU of the serve process during the batches (Linux)

    @property
    def http_rate(self) -> float:
        return self.count / self.http_seconds

    @property
    def raw_rate(self) -> float:
        return self.raw_rows / self.raw_seconds

    def lines(self) -> list[str]:
        return [
            f"{self.engine}: {self.count:,} messages to {self.recipients:,} recipients, batches of {BATCH:,} "
            f"({self.body_bytes / 1024:,.0f} KiB each), {self.clients} concurrent clients",
            f"raw limit (enqueue_many of {self.raw_rows:,} pre-planned rows, {BATCH:,}/transaction): "
            f"{self.raw_rate:,.0f} rows/s ({self.raw_seconds:.2f} s)",
            f"herald POST /api/messages/batch (all 202, committed):              {self.http_rate:,.0f} msgs/s "
            f"({self.http_seconds:.2f} s)",
            f"ratio herald / raw: {self.http_rate / self.raw_rate:.0%}",
            *self._cpu_line(),
        ]

    def _cpu_line(self) -> list[str]:
        # Wall-clock rates on a shared machine move with everyone else's load; CPU time per message barely
        # does, and says what one core would accept on its own.
        if not self.server_cpu_seconds:
            return []
        per_message = self.server_cpu_seconds / self.count
        return [
            f"herald serve CPU: {per_message * 1000:.3f} ms per message "
            f"(= {1 / per_message:,.0f} msgs/s per fully available core)"
        ]


def payload(i: int, recipients: int) -> dict[str, object]:
    return {
        "idempotency_key": f"bench-{i}",
        "email": f"intake{i % recipients}@bench.invalid",
        "class": "transactional",
        "channels": ["email"],
        "content": {"email": {"subject": f"Order {i}", "text": TEXT, "html": f"<p>Order {i} has shipped.</p>"}},
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (from /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """`herald serve --no-worker` on a free port until the block ends (SIGTERM): its URL and pid."""
    port = _free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen([HERALD, "serve", "--no-worker", "--port", str(port)], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"herald did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def post_batches(base: str, secret: str, bodies: list[bytes], clients: int) -> None:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=120) as client:

        async def one_client(start: int) -> None:
            for body in bodies[start::clients]:
                reply = await client.post("/api/messages/batch", content=body)
                if reply.status_code != 202:
                    raise RuntimeError(f"POST /api/messages/batch answered {reply.status_code}: {reply.text[:500]}")

        await asyncio.gather(*(one_client(c) for c in range(clients)))


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(messages)) or 0)


def raw_enqueue(engine: sa.Engine, count: int) -> float:
    """Seconds to enqueue_many `count` pre-planned rows (for the people the HTTP run created), 1,000 per
    transaction, under fresh message keys."""
    with engine.connect() as conn:
        people = list(conn.execute(sa.select(messages.c.person_id).order_by(messages.c.id).limit(count)).scalars())
    now = SystemClock().now()
    rows = [
        ledger.NewMessage(
            person_id=people[i % len(people)],
            message_key=f"raw-{i}",
            message_class="transactional",
            status="queued",
            channels=["email"],
            addresses={"email": f"intake{i}@bench.invalid"},
            content={"email": {"subject": f"Order {i}", "text": TEXT, "html": f"<p>Order {i} has shipped.</p>"}},
            available_at=now,
            zones=["UTC"],
            zone_source="account",
            quiet_window="exempt: transactional",
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        with engine.begin() as conn:
            enqueue_many(conn, rows[start : start + BATCH], now)
    return time.perf_counter() - started


def run(count: int, recipients: int, clients: int, pg_admin_url: str | None, raw_rows: int = 0) -> IntakeResult:
    kind = "postgres" if pg_admin_url else "sqlite"
    bodies = [
        json.dumps({"messages": [payload(i, recipients) for i in range(start, min(start + BATCH, count))]}).encode()
        for start in range(0, count, BATCH)
    ]
    with scratch_database(kind, pg_admin_url) as url, tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(url)
        try:
            with unit_of_work(engine, SystemClock(), SYSTEM) as uow:
                secret = create_key(uow, "bench").secret
            log = Path(tmp) / "herald.log"
            env = os.environ | {
                "HERALD_DATA_DIR": tmp,
                "HERALD_DATABASE_URL": url,
                "HERALD_DEFAULT_REGION": "US",
                "HERALD_BACKUP_SCHEDULE": "off",
                "HERALD_EMBEDDED_SIMULATOR": "false",
            }
            with serve(env, log) as (base, pid):
                cpu_before = cpu_seconds(pid)
                started = time.perf_counter()
                try:
                    asyncio.run(post_batches(base, secret, bodies, clients))
                except RuntimeError as exc:
                    raise RuntimeError(f"{exc}\nserver log tail:\n{log.read_text()[-4000:]}") from None
                http_seconds = time.perf_counter() - started
                cpu_after = cpu_seconds(pid)
            cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
            if (stored := _count(engine)) != count:
                raise AssertionError(f"{stored} rows stored for {count} accepted messages")
            raw_rows = raw_rows or count
            raw_seconds = raw_enqueue(engine, raw_rows)
        finally:
            engine.dispose()
    return IntakeResult(kind, count, recipients, clients, http_seconds, raw_rows, raw_seconds, len(bodies[0]), cpu)
