"""`herald serve` and `herald worker`."""

from __future__ import annotations

import typer
import uvicorn

from herald.api.app import create_app
from herald.cli.common import console, runtime
from herald.worker.loop import run_worker


def serve(
    host: str | None = typer.Option(None, help="Address to bind (default HERALD_HOST, 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default HERALD_PORT, 8025)."),
    no_worker: bool = typer.Option(False, "--no-worker", help="Do not run the embedded worker."),
) -> None:
    """Serve the HTTP API and web UI; refuses to start on an un-migrated database."""
    with runtime() as rt:
        bind_host, bind_port = host or rt.settings.host, port or rt.settings.port
        app = create_app(rt, embedded_worker=not no_worker)
        console.print(f"Herald is running at http://{bind_host}:{bind_port}/  (API docs: /docs)")
        uvicorn.run(app, host=bind_host, port=bind_port, log_level="warning")


def worker(
    once: bool = typer.Option(False, "--once", help="Run one pass of due work and exit."),
    concurrency: int = typer.Option(1, "--concurrency", min=1, help="Parallel deliveries."),
) -> None:
    """Run background work: scheduled backups (and, later, deliveries)."""
    with runtime() as rt:
        run_worker(rt, once=once, concurrency=concurrency)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("worker")(worker)
