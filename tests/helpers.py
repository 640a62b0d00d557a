"""Small helpers shared by tests: the CLI in-process, free loopback ports, the CI flag, postfix's address."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from herald.cli.main import app
from herald.core.actor import Actor
from herald.core.clock import Clock
from herald.db.unit_of_work import unit_of_work

T = TypeVar("T")

_runner = CliRunner()


def cli(*args: str) -> Result:
    """Run `herald ARGS…` in-process with the environment the test set; fail loudly on crashes."""
    result = _runner.invoke(app, list(args), catch_exceptions=False)
    return result


IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postfix_address() -> tuple[str, int]:
    """The real postfix from scripts/services.sh; a missing one fails in CI and skips only on a laptop."""
    value = os.environ.get("HERALD_TEST_SMTP")
    if not value:
        if IN_CI:
            pytest.fail("HERALD_TEST_SMTP is not set: postfix is required in CI (run scripts/services.sh).")
        pytest.skip("postfix not configured (HERALD_TEST_SMTP); `make test` starts it")
    host, _, port = value.rpartition(":")
    return host, int(port or 25)


def in_unit(engine: sa.Engine, clock: Clock, actor: Actor, service: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a state-changing service in its own unit of work, as an entry point does."""
    with unit_of_work(engine, clock, actor) as uow:
        return service(uow, *args, **kwargs)
