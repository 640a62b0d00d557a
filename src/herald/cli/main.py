"""The `herald` command: one typer app, each slice registers its commands."""

from __future__ import annotations

import typer

from herald.cli import (
    apikeys,
    backups,
    bench,
    campaigns,
    contacts,
    db,
    jobs,
    messages,
    segments,
    serve,
    simulator,
    templates,
    users,
)

app = typer.Typer(
    name="herald",
    help="Herald: self-hosted customer communication hub.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for module in (
    db,
    apikeys,
    serve,
    contacts,
    backups,
    bench,
    simulator,
    users,
    messages,
    segments,
    templates,
    jobs,
    campaigns,
):
    module.register(app)


def main() -> None:
    app()
