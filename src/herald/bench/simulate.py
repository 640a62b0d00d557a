"""Campaign simulation benchmark: N seeded people, the whole audience simulated (totals + one page), against the raw
limit measured in the same run (reading every recipient's planning inputs, chunk by chunk, with no planning)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from herald.bench.launch import bench_runtime, seed_audience
from herald.campaigns import service
from herald.campaigns.launch import CHUNK
from herald.db.runtime import Runtime
from herald.delivery import bulk_plan


@dataclass
class SimulateBench:
    engine: str
    recipients: int
    seed_seconds: float
    raw_seconds: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process only
    raw_cpu_seconds: float = 0.0
    total: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        target = "OK" if self.seconds <= 5 else "OVER"
        return [
            f"{self.engine}: {self.recipients:,} people seeded in {self.seed_seconds:.1f} s",
            f"  raw limit  read every recipient's planning inputs ({CHUNK:,} per query set): {self.raw_seconds:.2f} s "
            f"(CPU {self.raw_cpu_seconds:.2f} s)",
            f"  herald     simulate {self.total:,} recipients (totals + page 1): {self.seconds:.2f} s "
            f"({self.total / self.seconds:,.0f} recipients/s; CPU {self.cpu_seconds:.2f} s)  {target} (target <= 5 s)",
            f"  ratio herald / raw time: {self.seconds / self.raw_seconds:.1f}x",
            "  outcomes: " + "  ".join(f"{k}={v:,}" for k, v in sorted(self.by_outcome.items())),
            "  reasons: " + "  ".join(f"{k}={v:,}" for k, v in sorted(self.by_reason.items())),
        ]


def raw_read(runtime: Runtime, recipients: int) -> float:
    started = time.perf_counter()
    with runtime.engine.connect() as conn:
        for start in range(1, recipients + 1, CHUNK):
            bulk_plan.load_recipients(conn, list(range(start, min(start + CHUNK, recipients + 1))))
    return time.perf_counter() - started


def run(kind: str, recipients: int, database_url: str | None, pg_admin_url: str | None) -> SimulateBench:
    with bench_runtime(kind, database_url, pg_admin_url) as runtime:
        campaign_id, seeded = seed_audience(runtime, recipients)
        result = SimulateBench(runtime.engine.dialect.name, recipients, seeded)
        cpu = time.process_time()
        result.raw_seconds = raw_read(runtime, recipients)
        result.raw_cpu_seconds = time.process_time() - cpu
        cpu, started = time.process_time(), time.perf_counter()
        page = service.simulate_campaign(runtime, campaign_id, page=1, per_page=50)
        result.seconds = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu
        result.total = page.total
        result.by_outcome = dict(page.by_outcome)
        result.by_reason = dict(page.by_reason)
    return result
