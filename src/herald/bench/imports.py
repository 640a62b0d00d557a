"""`herald bench import`: messy contacts → import rows/s and peak RSS, against the raw read + validate limit."""

from __future__ import annotations

import csv
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from herald.contacts import importing
from herald.contacts.importing import open_any, validated_chunks
from herald.core.clock import SystemClock
from herald.db.engine import create_db_engine
from herald.db.migrate import upgrade

FIRST = ["Anna", "Ben", "Chloé", "David", "Émile", "Fatima", "Grace", "Hiro", "Ines", "Jürgen", "Kofi", "Lena", "Mateo"]
LAST = ["Smith", "Müller", "García", "Nguyen", "O'Brien", "Kowalski", "Rossi", "Dubois", "Silva", "Yamamoto"]
DOMAINS = ["gmail.com", "googlemail.com", "example.com", "acme.io", "outlook.com", "web.de", "corp.example.org"]
AREA_CODES = [212, 415, 312, 617, 206, 303, 512, 646, 718, 202]
# Every person gets their own number; about 1 in 50 shares a household landline with the next person.
PHONE_FORMATS = {
    "US": lambda n: f"({AREA_CODES[n % 10]}) {200 + n // 10 % 800}-{n // 8000 % 10000:04d}",
    "GB": lambda n: f"020 7{n % 1000:03d} {n // 1000 % 10000:04d}",
    "DE": lambda n: f"030 {1000000 + n % 8999999}",
    "FR": lambda n: f"01 4{n % 10} {n // 10 % 100:02d} {n // 1000 % 100:02d} {n // 100000 % 100:02d}",
}


@dataclass
class BenchResult:
    rows: int
    raw_seconds: float
    import_seconds: float
    peak_rss_mb: float
    children_peak_rss_mb: float
    counts: dict[str, int]

    @property
    def raw_rate(self) -> float:
        return self.rows / self.raw_seconds

    @property
    def import_rate(self) -> float:
        return self.rows / self.import_seconds


def _messy_rows(count: int, seed: int) -> Iterator[list[str]]:
    rng = random.Random(seed)
    people = max(count * 7 // 10, 1)  # about 30 % of rows repeat someone, with variations
    for _ in range(count):
        n = rng.randrange(people)
        first, last = FIRST[n % len(FIRST)], LAST[n // len(FIRST) % len(LAST)]
        domain = DOMAINS[n % len(DOMAINS)]
        email = f"{first.lower()}.{last.lower()}{n}@{domain}".replace("'", "")
        if rng.random() < 0.3:
            email = email.upper() if rng.random() < 0.5 else f"  {email.replace('.', '', 1)} "
        country = list(PHONE_FORMATS)[(n - 1 if n % 50 == 1 else n) % 4]
        household = n - 1 if n % 50 == 1 else n
        phone = PHONE_FORMATS[list(PHONE_FORMATS)[household % 4]](household) if rng.random() < 0.6 else ""
        if rng.random() < 0.01:
            email = email.replace("@", " at ")  # a bad row
        yield [
            email,
            first,
            last,
            phone,
            country,
            f"note {n}" if rng.random() < 0.1 else "",
            "vip" if n % 17 == 0 else "",
        ]


def generate(path: Path, rows: int, seed: int = 7) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Email", "First Name", "Last Name", "Phone", "Country", "Notes", "Tags"])
        writer.writerows(_messy_rows(rows, seed))
    return path


def raw_limit(path: Path, workers: int, region: str) -> float:
    """Seconds to read and validate every row with the same process pool, writing nothing."""
    start = time.perf_counter()
    with open_any(path, "auto") as source:
        pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        try:
            for _ in validated_chunks(source, region, workers, pool):
                pass
        finally:
            if pool is not None:
                pool.shutdown()
    return time.perf_counter() - start


def run(rows: int, workers: int, database_url: str | None, keep: Path | None = None) -> BenchResult:
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        folder = keep or Path(tmp)
        path = generate(folder / "messy.csv", rows)
        url = database_url or f"sqlite:///{folder / 'bench.db'}"
        engine = create_db_engine(url)
        upgrade(engine)
        start = time.perf_counter()
        report = importing.run_import(engine, SystemClock(), path, workers=workers, default_region="US")
        import_seconds = time.perf_counter() - start
        engine.dispose()
        raw_seconds = raw_limit(path, workers, "US")
    self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return BenchResult(rows, raw_seconds, import_seconds, self_peak, child_peak, report.counts)
