"""bench commands."""

import typer


def register(app: typer.Typer) -> None:
    pass
