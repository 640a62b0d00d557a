"""`herald backup`, `herald restore` and `herald verify-backup`: verified backups from the shell."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from herald.backup.backup import take_backup
from herald.backup.format import ProgressHook
from herald.backup.restore import restore_backup, verify_backup_file
from herald.cli.common import console, err_console, runtime, show_progress
from herald.core.actor import CLI
from herald.core.errors import HeraldError

_FILE_HELP = "A backup file written by `herald backup`."


@contextmanager
def _progress() -> Iterator[ProgressHook | None]:
    """One bar per table, relabelled as it moves through the steps; nothing in CI logs."""
    if not show_progress():
        yield None
        return
    columns = (TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def hook(label: str, done: int, total: int) -> None:
            step, _, table = label.partition(" ")
            if table not in tasks:
                tasks[table] = bar.add_task(table, total=total)
            bar.update(tasks[table], description=f"{table} ({step})", completed=done, total=total)

        yield hook


def _print_counts(counts: Mapping[str, int]) -> None:
    console.print(f"  {'table':<28} {'rows':>10}")
    for name, rows in counts.items():
        console.print(f"  {name:<28} {rows:>10}")


def _fail(exc: HeraldError) -> typer.Exit:
    err_console.print(f"[bold red]error[/] ({exc.code}): {exc.message}")
    return typer.Exit(1)


def backup(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="File to write (default: a timestamped file in the backup directory)."),
    ] = None,
) -> None:
    """Write a consistent backup of every table, then verify it by restoring it into a scratch database."""
    with runtime() as rt:
        with _progress() as hook:
            row = take_backup(rt, CLI, kind="manual", out=out, progress=hook)
        _report_backup(row)


def _report_backup(row: Mapping[str, Any]) -> None:
    console.print(f"backup written to {row['path']} ({row['size_bytes']} bytes, sha256 {row['sha256']})")
    if row["status"] != "verified":
        err_console.print(f"[bold red]error[/] (backup_verification_failed): {row['error']}")
        raise typer.Exit(1)
    console.print("verified: a restore into a scratch database matched every table:")
    _print_counts(row["table_counts"])


def restore(file: Annotated[Path, typer.Argument(help=_FILE_HELP)]) -> None:
    """Restore FILE into an empty database (migrating it first if it has no tables), then verify it."""
    with runtime(migrated=False) as rt:
        with _progress() as hook:
            result = restore_backup(rt.engine, file, hook, audit=(rt.clock, CLI))
        origin = f"from {result.source_engine}, schema revision {result.alembic_revision}"
        console.print(f"restored {file} ({origin}); verified against the backup's checksums:")
        _print_counts(result.table_counts)


def verify_backup(file: Annotated[Path, typer.Argument(help=_FILE_HELP)]) -> None:
    """Check FILE's checksums and restore it into a throwaway SQLite database; touches no real data."""
    try:
        with _progress() as hook:
            result = verify_backup_file(file, hook)
    except HeraldError as exc:
        raise _fail(exc) from exc
    console.print(f"verified {file} (from {result.source_engine}, schema revision {result.alembic_revision}):")
    _print_counts(result.table_counts)


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
    app.command("verify-backup")(verify_backup)
