"""`herald bench …`: benchmarks that print figures and the ratio to the raw limit measured in the same run."""

from __future__ import annotations

import os

import typer

from herald.bench import imports
from herald.cli.common import console

bench_app = typer.Typer(help="Benchmarks (figures, not tests): each prints the raw limit measured in the same run.")


@bench_app.command("import")
def bench_import(
    rows: int = typer.Option(1_000_000, "--rows", min=1, help="How many messy contact rows to generate."),
    workers: int = typer.Option(0, "--workers", min=0, help="Validation processes (0 = one per core)."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="Database to import into (default: temp SQLite)."
    ),
) -> None:
    """Generate messy contacts, import them, print rows/s and peak RSS against CSV read + validation alone."""
    workers = workers or (os.cpu_count() or 1)
    console.print(f"generating and importing {rows:,} rows with {workers} validation processes …")
    result = imports.run(rows, workers, database_url)
    console.print(f"raw limit (read + validate only): {result.raw_rate:,.0f} rows/s ({result.raw_seconds:.1f} s)")
    console.print(f"herald import (end to end):      {result.import_rate:,.0f} rows/s ({result.import_seconds:.1f} s)")
    console.print(f"ratio herald / raw:              {result.import_rate / result.raw_rate:.0%}")
    console.print(f"peak RSS: main {result.peak_rss_mb:,.0f} MB, largest worker {result.children_peak_rss_mb:,.0f} MB")
    console.print("counts: " + "  ".join(f"{k}={v}" for k, v in result.counts.items()))


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")
