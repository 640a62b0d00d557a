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


@bench_app.command("send")
def bench_send(
    count: int = typer.Option(20_000, "--count", min=1, help="Messages to send."),
    smtp: str = typer.Option("127.0.0.1:25", "--smtp", help="HOST:PORT of the SMTP server."),
    connections: int = typer.Option(8, "--connections", min=1, help="SMTP connections (raw and Herald alike)."),
    database_url: str | None = typer.Option(None, "--database-url", help="Empty database (default: temp SQLite)."),
) -> None:
    """Raw aiosmtplib throughput with pre-built messages, then Herald end to end over HTTP, and the ratio."""
    from herald.bench import send

    host, _, port = smtp.rpartition(":")
    result = send.run(count, host, int(port), connections, database_url)
    for line in result.lines(connections):
        console.print(line)


@bench_app.command("ledger")
def bench_ledger(
    count: int = typer.Option(20_000, "--count", min=1, help="Ledger rows to claim and complete."),
    batch: int = typer.Option(100, "--batch", min=1, help="Rows per claim."),
    processes: list[int] = typer.Option([1, 4], "--processes", help="Worker process counts to run."),
    engines: list[str] = typer.Option(["sqlite", "postgres"], "--engine", help="sqlite and/or postgres."),
    pg_url: str | None = typer.Option(
        None, "--pg-url", envvar="HERALD_TEST_PG_URL", help="PostgreSQL admin URL for a throwaway database."
    ),
) -> None:
    """Claim + complete throughput with 1 and N processes on SQLite and PostgreSQL; asserts 0 dup / 0 lost."""
    from herald.bench import ledger

    for kind in engines:
        for n in processes:
            r = ledger.run_one(kind, n, count, batch, pg_url)
            console.print(
                f"{r.engine:8} processes={r.processes} batch={r.batch}: {r.rate:,.0f} msgs/s "
                f"({r.count:,} in {r.seconds:.2f} s; duplicates={r.duplicates} lost={r.lost})"
            )


@bench_app.command("segments")
def bench_segments(
    people: int = typer.Option(1_000_000, "--people", min=1, help="People to seed (with identifiers and consent)."),
    repeat: int = typer.Option(3, "--repeat", min=1, help="Runs of each count (the median is reported)."),
    engines: list[str] = typer.Option(["sqlite", "postgres"], "--engine", help="sqlite and/or postgres."),
    pg_url: str | None = typer.Option(
        None, "--pg-url", envvar="HERALD_TEST_PG_URL", help="PostgreSQL admin URL for a throwaway database."
    ),
) -> None:
    """Time segment counts (country + consent, attribute + tag, not-group, created within) against a plain count."""
    from herald.bench import segments

    for kind in engines:
        result = segments.run(kind, people, repeat, pg_url)
        for line in result.lines():
            console.print(line, markup=False)


EngineOption = typer.Option("sqlite", "--engine", help="sqlite or postgres (a scratch database; see --pg-url).")
PgUrlOption = typer.Option(
    None, "--pg-url", envvar="HERALD_TEST_PG_URL", help="PostgreSQL admin URL for a throwaway database."
)
DatabaseUrlOption = typer.Option(
    None, "--database-url", help="An empty database to use instead of a scratch one (it is migrated)."
)


@bench_app.command("launch")
def bench_launch(
    recipients: int = typer.Option(100_000, "--recipients", min=1, help="People in the audience."),
    engine: str = EngineOption,
    pg_url: str | None = PgUrlOption,
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Launch a campaign to N seeded people: freeze + plan + queue, against enqueue_many of N pre-built rows."""
    from herald.bench import launch

    for line in launch.run(engine, recipients, database_url, pg_url).lines():
        console.print(line, markup=False)


@bench_app.command("simulate")
def bench_simulate(
    recipients: int = typer.Option(100_000, "--recipients", min=1, help="People in the audience."),
    engine: str = EngineOption,
    pg_url: str | None = PgUrlOption,
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Simulate a campaign to N seeded people (totals + a page), against reading their planning inputs alone."""
    from herald.bench import simulate

    for line in simulate.run(engine, recipients, database_url, pg_url).lines():
        console.print(line, markup=False)
