"""`herald db …`: schema migrations."""

from __future__ import annotations

import typer

from herald.cli.common import console, runtime
from herald.db import migrate

db_app = typer.Typer(help="Database schema: upgrade and inspect migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    with runtime(migrated=False) as rt:
        migrate.upgrade(rt.engine, revision)
        console.print(f"database at revision {migrate.current_revision(rt.engine)}")


@db_app.command("current")
def current() -> None:
    """Print the database's revision and the newest one this Herald knows."""
    with runtime(migrated=False) as rt:
        console.print(f"current: {migrate.current_revision(rt.engine)}  head: {migrate.head_revision(rt.engine)}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
