"""The worker backs off exponentially while the database is full and logs one line per attempt."""

from __future__ import annotations

import logging

import pytest

from herald.contacts import service
from herald.core.errors import StorageUnavailableError
from herald.db.runtime import Runtime
from herald.worker.loop import MAX_BACKOFF_SECONDS, POLL_SECONDS, run_worker
from tests.integration.test_hostile_input import count_people, fill_storage, free_storage


class Waits:
    """Stands in for stop.wait: records each delay and stops the loop after `limit` waits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.delays.append(seconds)
        return len(self.delays) >= self.limit


def store_a_contact(runtime: Runtime) -> int:
    """A real write that needs new pages, like a delivery pass writing attempts and receipts."""
    data = service.ContactInput(emails=["worker@example.com"], fields={"attributes": {"note": "w" * 200_000}})
    service.upsert_contact(runtime.engine, runtime.clock, data, default_region="US")
    return 0


def test_a_full_database_makes_the_worker_back_off_and_log_once_per_interval(
    runtime: Runtime, db_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    fill_storage(runtime, db_kind)
    with pytest.raises(StorageUnavailableError):
        store_a_contact(runtime)  # the job really fails on this engine
    waits = Waits(limit=12)
    with caplog.at_level(logging.WARNING, logger="herald.worker.loop"):
        run_worker(runtime, jobs=store_a_contact, wait=waits)
    assert waits.delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, *[MAX_BACKOFF_SECONDS] * 3]
    lines = [r for r in caplog.records if r.name == "herald.worker.loop"]
    assert len(lines) == 12  # one per attempt, and attempts thin out
    assert all(r.exc_info is None for r in lines)  # an expected condition: no traceback
    assert "retrying in 256 s" in lines[8].getMessage()

    free_storage(runtime, db_kind)
    caplog.clear()
    recovered = Waits(limit=1)
    with caplog.at_level(logging.WARNING, logger="herald.worker.loop"):
        run_worker(runtime, jobs=store_a_contact, wait=recovered)
    assert recovered.delays == [POLL_SECONDS]  # back to normal polling at once
    assert not [r for r in caplog.records if r.name == "herald.worker.loop"]
    assert count_people(runtime.engine) == 1


def test_an_unexpected_failure_logs_its_traceback_once_then_one_line_per_interval(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def flaky(_: Runtime) -> int:
        nonlocal calls
        calls += 1
        if calls <= 4:
            raise RuntimeError("a bug in a job")
        return 0

    waits = Waits(limit=5)
    with caplog.at_level(logging.WARNING, logger="herald.worker.loop"):
        run_worker(runtime, jobs=flaky, wait=waits)
    assert waits.delays == [1, 2, 4, 8, POLL_SECONDS]
    records = [r for r in caplog.records if r.name == "herald.worker.loop"]
    assert [bool(r.exc_info) for r in records] == [True, False, False, False, False]
    assert records[-1].getMessage() == "worker recovered after 4 failed passes"
