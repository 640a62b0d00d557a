"""`herald campaigns …` in-process: create, simulate (table and JSON), coverage, launch --wait, controls, progress."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from herald.core.clock import SystemClock
from herald.db.runtime import Runtime
from herald.jobs.kinds import job_kinds
from herald.jobs.runner import run_jobs_until
from tests.helpers import cli
from tests.integration.test_campaigns import EVERYONE, _segment, _subscribed, _template


@pytest.fixture
def worker_jobs(runtime: Runtime) -> Iterator[None]:
    """Jobs run beside the CLI as a `herald worker` would run them (what `launch --wait` waits for), on the
    system clock like the CLI's own runtime."""
    stop = threading.Event()
    real = Runtime(settings=runtime.settings, engine=runtime.engine, clock=SystemClock())
    thread = threading.Thread(target=run_jobs_until, args=(real, job_kinds(), stop), kwargs={"poll": 0.05})
    thread.start()
    yield
    stop.set()
    thread.join(timeout=60)


def test_the_cli_creates_simulates_launches_and_controls_a_campaign(
    api: TestClient, runtime: Runtime, cli_env: dict[str, str], worker_jobs: None
) -> None:
    _template(api)
    _subscribed(api, "ann@example.com", first_name="Ann", timezone="Europe/London")
    _subscribed(api, "anon@example.com", timezone="Europe/London")
    segment = _segment(runtime, EVERYONE)
    created = cli(
        "campaigns", "create", "--name", "Winter", "--template", "winter-sale", "--segment", str(segment),
        "--channel", "email", "--local-time", "2030-06-03 10:00", "--spread", "30",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "campaign 1 created (draft): winter-sale v1" in created.stdout

    table = cli("campaigns", "simulate", "1")
    assert table.exit_code == 0, table.output
    assert "Ann" in table.stdout and "missing_variable" in table.stdout and "2 recipient(s) (segment)" in table.stdout
    as_json = json.loads(cli("campaigns", "simulate", "1", "--json").stdout)
    assert as_json["by_outcome"] == {"send": 1, "hold": 1}

    coverage = cli("campaigns", "coverage", "1")
    assert "first_name missing for 1 (50 %) → held" in coverage.stdout

    launched = cli("campaigns", "launch", "1", "--wait", "--timeout", "60")
    assert launched.exit_code == 0, launched.output
    assert "launch job" in launched.stdout and "2 of 2 planned" in launched.stdout

    paused = cli("campaigns", "pause", "1")
    assert "campaign 1 is paused; 1 message(s) changed" in paused.stdout
    refused = cli("campaigns", "pause", "1")
    assert refused.exit_code == 1 and "campaign_state" in refused.output
    assert "is running" in cli("campaigns", "resume", "1").stdout
    progress = json.loads(cli("campaigns", "progress", "1", "--json").stdout)
    assert progress["by_status"] == {"queued": 1, "held": 1} and progress["by_reason"] == {"missing_variable": 1}
    listed = cli("campaigns", "list")
    assert "Winter" in listed.stdout and "running" in listed.stdout
    assert json.loads(cli("campaigns", "show", "1").stdout)["status"] == "running"
    bad = cli("campaigns", "create", "--name", "X", "--template", "winter-sale", "--segment", str(segment),
              "--channel", "email", "--local-time", "2026-11-23 25:00")  # fmt: skip
    assert bad.exit_code == 1 and "invalid_input" in bad.output
