"""What every command shares: loading the runtime and printing errors the same way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from herald.core.errors import HeraldError
from herald.core.settings import load_settings
from herald.db.migrate import check_migrated
from herald.db.runtime import Runtime, open_runtime

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def show_progress() -> bool:
    """Progress bars are for people; keep CI logs clean."""
    return os.environ.get("CI", "").lower() not in {"1", "true", "yes"}


@contextmanager
def runtime(*, migrated: bool = True) -> Iterator[Runtime]:
    """Open the runtime; turn HeraldErrors into a clear message and exit code 1."""
    rt = open_runtime(load_settings())
    try:
        if migrated:
            check_migrated(rt.engine)
        yield rt
    except HeraldError as exc:
        err_console.print(f"[bold red]error[/] ({exc.code}): {exc.message}")
        raise typer.Exit(1) from exc
    finally:
        rt.close()
