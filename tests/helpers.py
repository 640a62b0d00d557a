"""Small helpers shared by tests: the CLI in-process, free loopback ports, an in-process SMTP server, the CI flag,
postfix's address."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
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


@contextmanager
def smtp_server(handler: Any) -> Iterator[int]:
    """An aiosmtpd server with `handler` on a free loopback port, in its own thread; yields the port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


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


def wait_for_job(api: Any, job_id: int, *, timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /api/jobs/{id} until the job is done or failed (a worker or the `job_runner` fixture runs it)."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = api.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout} s"
        time.sleep(0.05)


def scan_duplicates(api: Any, **params: Any) -> dict[str, Any]:
    """POST /api/duplicates/scan (202 + job), wait for the job, return its result (new, refreshed, …)."""
    queued = api.post("/api/duplicates/scan", params=params)
    assert queued.status_code == 202, queued.text
    job = wait_for_job(api, queued.json()["job_id"])
    assert job["status"] == "done", job
    result: dict[str, Any] = job["result"]
    return result
