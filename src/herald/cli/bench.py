"""`herald bench …`: benchmarks that print figures and the ratio to the raw limit measured in the same run."""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path

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
    count: int = typer.Option(20_000, "--count", min=2, help="Messages to queue and drain."),
    smtp: str | None = typer.Option(
        None, "--smtp", help="HOST:PORT of the relay (e.g. the CI postfix); default: an aiosmtpd counting sink."
    ),
    connections: int = typer.Option(8, "--connections", min=1, help="SMTP connections (raw and Herald alike)."),
    concurrency: int = typer.Option(16, "--concurrency", min=1, help="The worker's sends in flight."),
    database_url: str | None = typer.Option(None, "--database-url", help="Empty database (default: temp SQLite)."),
    pg_url: str | None = typer.Option(
        None, "--pg-url", help="PostgreSQL admin URL: use a throwaway database made there instead."
    ),
    templated: bool = typer.Option(
        False, "--templated", help="Queue rows as a campaign does: a template version and variables, rendered at claim."
    ),
    profile: Path | None = typer.Option(
        None, "--profile", help="Record the worker with py-spy (speedscope JSON; collapsed stacks for a .txt file)."
    ),
    worker_src: Path | None = typer.Option(
        None, "--worker-src", help="A/B: run the worker from another checkout's src/ directory (same schema)."
    ),
    end_to_end: bool = typer.Option(
        False, "--end-to-end", help="The older measurement: HTTP intake and delivery overlapped (serve + worker)."
    ),
) -> None:
    """Queue N e-mails, time `herald worker` draining them into the relay, against raw aiosmtplib (same run)."""
    from herald.bench import send
    from herald.bench.ledger import scratch_database

    relay = None
    if smtp is not None:
        host, _, port = smtp.rpartition(":")
        relay = (host, int(port))
    with scratch_database("postgres", pg_url) if pg_url else nullcontext(database_url) as url:
        if end_to_end:
            lines = send.end_to_end(count, relay, connections, url).lines(connections)
        else:
            result = send.run(
                count,
                relay,
                connections,
                url,
                concurrency=concurrency,
                templated=templated,
                profile=profile,
                worker_src=worker_src,
            )
            lines = result.lines(connections)
    for line in lines:
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


@bench_app.command("intake")
def bench_intake(
    messages: int = typer.Option(20_000, "--messages", min=1, help="Messages to send, in batches of 1,000."),
    recipients: int = typer.Option(1000, "--recipients", min=1, help="Distinct addresses they go to."),
    clients: int = typer.Option(2, "--clients", min=1, help="Concurrent HTTP clients."),
    enqueue_rows: int = typer.Option(
        0, "--enqueue-rows", min=0, help="Rows for the raw enqueue_many figure (default: as many as --messages)."
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="A PostgreSQL server (admin URL): a throwaway database is made there. Default: a temp SQLite file.",
    ),
) -> None:
    """POST /api/messages/batch against `herald serve --no-worker`, against enqueue_many alone, and the ratio."""
    from herald.bench import intake

    pg_url = database_url if database_url and database_url.startswith("postgresql") else None
    result = intake.run(messages, recipients, clients, pg_url, enqueue_rows)
    for line in result.lines():
        console.print(line, markup=False)


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
