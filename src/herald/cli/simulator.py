"""`herald simulator`: run the Twilio-compatible provider simulator in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from herald.channels.simulator import (
    DEFAULT_ACCOUNT_SID,
    MIN_AUTH_TOKEN_CHARS,
    SimulatorConfig,
    SimulatorServer,
)
from herald.cli.common import err_console, runtime
from herald.delivery.bootstrap import SIMULATOR_TOKEN_SECRET, simulator_auth_token


def _token(given: str | None) -> tuple[str, str]:
    """The auth token and a line saying where it comes from (never the token itself)."""
    if given is not None:
        if len(given) < MIN_AUTH_TOKEN_CHARS:
            err_console.print(f"[bold red]error[/]: --auth-token needs at least {MIN_AUTH_TOKEN_CHARS} characters")
            raise typer.Exit(2)
        return given, "auth token: from --auth-token"
    with runtime() as rt:
        token = simulator_auth_token(rt.engine)
    where = (
        f"auth token: this installation's, instance secret {SIMULATOR_TOKEN_SECRET!r} in the database "
        "(the same one `herald serve` and `herald worker` use)"
    )
    return token, where


def simulator(
    port: int = typer.Option(8026, "--port", min=0, max=65535, help="Port to listen on; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    log: Path | None = typer.Option(None, "--log", help="Append every request received as a JSON line here."),
    auth_token: str | None = typer.Option(
        None, "--auth-token", help="Signs callbacks; checks Basic auth. Default: this installation's own token."
    ),
    account_sid: str = typer.Option(DEFAULT_ACCOUNT_SID, "--account-sid", help="The one account served."),
    callback_delay: float = typer.Option(0.05, "--callback-delay", min=0, help="Seconds before each callback."),
) -> None:
    """Serve the subset of Twilio's API Herald uses, with signed callbacks and /_sim fault injection."""
    token, where = _token(auth_token)
    config = SimulatorConfig(
        auth_token=token, account_sid=account_sid, log_path=log, callback_delay_seconds=callback_delay
    )
    server = SimulatorServer(config, host=host, port=port)
    # One parseable line first, flushed, so scripts and tests can wait for it and learn the port.
    typer.echo(f"Simulator listening on {server.base_url} (account {account_sid})")
    typer.echo(where)
    sys.stdout.flush()
    server.run()


def register(app: typer.Typer) -> None:
    app.command("simulator")(simulator)
