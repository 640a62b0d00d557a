"""`herald jobs list` and `herald jobs show`: what the durable jobs are doing."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from herald.cli.common import console, runtime
from herald.core.errors import InvalidInputError
from herald.jobs import store

jobs_app = typer.Typer(help="Durable background jobs: imports, duplicate scans, backups.", no_args_is_help=True)


def _progress(job: dict[str, object]) -> str:
    progress = job["progress"]
    assert isinstance(progress, dict)
    total = progress["total"]
    return f"{progress['done']}/{total}" if total else str(progress["done"])


@jobs_app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="queued, running, done or failed.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind (import, duplicate_scan, backup).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 20,
) -> None:
    """The newest jobs: id, kind, status, progress, attempts and error."""
    with runtime() as rt:
        if status is not None and status not in store.STATUSES:
            raise InvalidInputError(f"Unknown status {status!r}; use one of {', '.join(store.STATUSES)}.")
        rows = store.list_jobs(rt.engine, status=status, kind=kind, limit=limit)
        table = Table("id", "kind", "status", "progress", "attempts", "created", "error")
        for job in rows:
            error = job["error"]
            table.add_row(
                str(job["id"]),
                str(job["kind"]),
                str(job["status"]),
                _progress(job),
                f"{job['attempts']}/{job['max_attempts']}",
                f"{job['created_at']:%Y-%m-%d %H:%M:%S}",
                error["message"] if isinstance(error, dict) else "",
            )
        console.print(table if rows else "no jobs")


@jobs_app.command("show")
def show_job(job_id: Annotated[int, typer.Argument(min=1, help="The job's id.")]) -> None:
    """One job as JSON (the same body as GET /api/jobs/{id})."""
    with runtime() as rt:
        job = store.get_job(rt.engine, job_id)
    console.print_json(json.dumps(job, default=str))


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
