"""Small helpers shared by tests: run the CLI in-process and build an authenticated API client."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from herald.cli.main import app

_runner = CliRunner()


def cli(*args: str) -> Result:
    """Run `herald ARGS…` in-process with the environment the test set; fail loudly on crashes."""
    result = _runner.invoke(app, list(args), catch_exceptions=False)
    return result
