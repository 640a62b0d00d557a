"""`herald simulator`: run the Twilio-compatible provider simulator in the foreground."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from herald.channels.simulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, SimulatorConfig, SimulatorServer


def simulator(
    port: int = typer.Option(8026, "--port", min=0, max=65535, help="Port to listen on; 0 picks a free one."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    log: Path | None = typer.Option(None, "--log", help="Append every request received as a JSON line here."),
    auth_token: str = typer.Option(DEFAULT_AUTH_TOKEN, "--auth-token", help="Signs callbacks; checks Basic auth."),
    account_sid: str = typer.Option(DEFAULT_ACCOUNT_SID, "--account-sid", help="The one account served."),
    callback_delay: float = typer.Option(0.05, "--callback-delay", min=0, help="Seconds before each callback."),
) -> None:
    """Serve the subset of Twilio's API Herald uses, with signed callbacks and /_sim fault injection."""
    config = SimulatorConfig(
        account_sid=account_sid, auth_token=auth_token, log_path=log, callback_delay_seconds=callback_delay
    )
    server = SimulatorServer(config, host=host, port=port)
    # One parseable line first, flushed, so scripts and tests can wait for it and learn the port.
    typer.echo(f"Simulator listening on {server.base_url} (account {account_sid})")
    sys.stdout.flush()
    server.run()


def register(app: typer.Typer) -> None:
    app.command("simulator")(simulator)
