"""A `herald worker` SIGKILLed in the middle of an import job: another worker resumes it, nobody lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.api.app import create_app
from herald.db.runtime import Runtime

HERALD = str(Path(sys.executable).with_name("herald"))
ROWS = 40_000  # 20 chunks: long enough to be caught half-way on a fast machine


@pytest.fixture
def client(runtime: Runtime, api_key: str) -> Iterator[TestClient]:
    # No job thread here: only the worker processes of the test run jobs.
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {api_key}"}) as c:
        yield c


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([HERALD, "worker"], env=env, stdout=out, stderr=out)


def _poll(client: TestClient, url: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(url).json()
    return body


def test_a_killed_import_job_resumes_in_another_worker(
    client: TestClient, cli_env: dict[str, str], tmp_path: Path
) -> None:
    rows = "".join(f"crash{i}@example.com,Person{i}\n" for i in range(ROWS))
    upload = client.post("/api/imports", files={"file": ("crash.csv", ("email,first_name\n" + rows).encode())})
    assert upload.status_code == 202
    batch_url, job_url = upload.json()["progress_url"], upload.json()["job_url"]
    assert _poll(client, job_url)["status"] == "queued"  # nothing runs it yet

    env = os.environ | cli_env | {"HERALD_JOB_LEASE_SECONDS": "2", "HERALD_BACKUP_SCHEDULE": "off"}
    log = tmp_path / "workers.log"
    first = _worker(env, log)
    try:
        deadline = time.monotonic() + 120
        while (batch := _poll(client, batch_url))["processed_rows"] == 0:
            assert time.monotonic() < deadline, log.read_text()
            assert first.poll() is None, log.read_text()
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    job = _poll(client, job_url)
    batch = _poll(client, batch_url)
    assert job["status"] == "running" and job["attempts"] == 1
    assert 0 < batch["processed_rows"] < ROWS, "the worker must die half-way for this test to mean anything"
    assert job["progress"]["done"] == batch["processed_rows"]  # progress is written with each chunk

    second = _worker(env, log)
    try:
        deadline = time.monotonic() + 300
        while (job := _poll(client, job_url))["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, log.read_text()
            assert second.poll() is None, log.read_text()
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    assert job["status"] == "done", job
    assert job["attempts"] == 2  # claimed again once the dead worker's lease ran out, and resumed
    assert job["progress"] == {"done": ROWS, "total": ROWS, "percent": 100}
    batch = _poll(client, batch_url)
    assert batch["status"] == "done" and batch["processed_rows"] == ROWS
    assert batch["counts"]["created"] == ROWS
    assert job["result"]["counts"]["created"] == ROWS
    people = client.get("/api/contacts", params={"limit": 1}).json()
    assert people["total"] == ROWS  # no person lost, none doubled
    assert "resumes after row" in log.read_text()
