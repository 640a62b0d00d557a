"""Send benchmark: raw aiosmtplib → server with pre-built messages, then Herald intake → ledger → worker → SMTP."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from herald.bench.smtp_raw import raw_smtp_throughput
from herald.channels.registry import ChannelRegistry
from herald.channels.smtp import SmtpConfig, SmtpEmailProvider, SmtpSecurity
from herald.core.clock import SystemClock
from herald.core.settings import Settings
from herald.db import migrate
from herald.db.delivery_tables import messages
from herald.db.engine import create_db_engine
from herald.db.runtime import Runtime
from herald.delivery import service
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer

RECIPIENT = "bench@bench.invalid"  # non-local: a discarding relay (the CI postfix) keeps no copy
TEXT = "Hello,\n\nYour order has shipped and should arrive within three working days.\n" * 12


@dataclass(frozen=True, slots=True)
class SendResult:
    count: int
    raw_rate: float
    intake_seconds: float
    delivery_seconds: float

    @property
    def intake_rate(self) -> float:
        return self.count / self.intake_seconds

    @property
    def delivery_rate(self) -> float:
        return self.count / self.delivery_seconds

    @property
    def end_to_end_rate(self) -> float:
        return self.count / (self.intake_seconds + self.delivery_seconds)


def _intake(runtime: Runtime, count: int, delivery: DeliverySettings) -> float:
    started = time.perf_counter()
    for i in range(count):
        request = service.SendRequest(
            message_class="transactional",
            channels=["email"],
            email=RECIPIENT,
            content={"email": {"subject": f"Bench {i}", "text": TEXT, "html": f"<p>Order {i} has shipped.</p>"}},
        )
        service.submit_message(runtime, "bench", f"bench-{i}", {"i": i}, request, delivery)
    return time.perf_counter() - started


async def _deliver(runtime: Runtime, host: str, port: int, connections: int, delivery: DeliverySettings) -> float:
    config = SmtpConfig(
        host=host,
        port=port,
        security=SmtpSecurity.PLAIN,
        default_sender="herald-bench@localhost",
        pool_size=connections,
    )
    provider = SmtpEmailProvider(config, runtime.clock)
    deliverer = Deliverer(runtime, ChannelRegistry([provider]), delivery)
    started = time.perf_counter()
    try:
        while await deliverer.run_pass(concurrency=connections * 4, max_seconds=3600):
            pass
        return time.perf_counter() - started
    finally:
        await provider.aclose()


def run(count: int, host: str, port: int, connections: int, database_url: str | None) -> SendResult:
    raw = asyncio.run(raw_smtp_throughput(host, port, count, connections))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=database_url or "", default_region="US")
        engine = create_db_engine(settings.resolved_database_url)
        migrate.upgrade(engine)
        runtime = Runtime(settings=settings, engine=engine, clock=SystemClock())
        delivery = DeliverySettings(
            quiet_exempt_transactional=True,
            delivery_batch_size=500,
            delivery_lease_seconds=300,
            embedded_simulator=False,
        )
        try:
            intake = _intake(runtime, count, delivery)
            seconds = asyncio.run(_deliver(runtime, host, port, connections, delivery))
            with engine.connect() as conn:
                sent = conn.scalar(sa.select(sa.func.count()).select_from(messages).where(messages.c.status == "sent"))
            if sent != count:
                raise AssertionError(f"only {sent} of {count} messages were sent")
        finally:
            engine.dispose()
    return SendResult(count, raw, intake, seconds)
