"""What every command shares: loading the runtime and printing errors the same way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import typer
from rich.console import Console

from herald.core.actor import CLI
from herald.core.errors import HeraldError
from herald.core.settings import load_settings
from herald.db.engine import redacted_url
from herald.db.migrate import check_migrated
from herald.db.runtime import Runtime, open_runtime
from herald.db.unit_of_work import UnitOfWork, unit_of_work

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def show_progress() -> bool:
    """Progress bars are for people; keep CI logs clean."""
    return os.environ.get("CI", "").lower() not in {"1", "true", "yes"}


def database_label(url: str) -> str:
    """The database URL as operators may see it: the password masked, everything else as configured."""
    return redacted_url(url) or "(unparsable HERALD_DATABASE_URL)"


@contextmanager
def runtime(*, migrated: bool = True) -> Iterator[Runtime]:
    """Open the runtime; turn HeraldErrors into a clear message and exit code 1.

    Says which database it opened (on stderr, so stdout stays parseable): with two installations on one
    machine, or a forgotten HERALD_DATABASE_URL, this one line saves a confusing hour.
    """
    settings = load_settings()
    err_console.print(f"database: {database_label(settings.resolved_database_url)}", markup=False)
    rt = open_runtime(settings)
    try:
        if migrated:
            check_migrated(rt.engine)
        yield rt
    except HeraldError as exc:
        err_console.print(f"[bold red]error[/] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        rt.close()


def begin(rt: Runtime) -> AbstractContextManager[UnitOfWork]:
    """The unit of work a command's change runs in: audited as `cli`."""
    return unit_of_work(rt.engine, rt.clock, CLI)
