"""Durable jobs through the API and the CLI: progress, results, failures, fencing, and a job that keeps crashing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.api.app import create_app
from herald.core.clock import FrozenClock
from herald.db.runtime import Runtime
from herald.jobs import store
from tests.helpers import cli, in_unit, wait_for_job

PEOPLE = b"email,first_name\nann@example.com,Ann\nbob@example.com,Bob\nann@example.com,Ann again\n"


@pytest.fixture
def idle(runtime: Runtime, api_key: str) -> Iterator[TestClient]:
    """The API with no worker at all: jobs stay queued until one runs."""
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {api_key}"}) as client:
        yield client


def test_an_import_runs_as_a_job_with_progress_and_result(api: Any, cli_env: dict[str, str]) -> None:
    upload = api.post("/api/imports", files={"file": ("people.csv", PEOPLE, "text/csv")})
    assert upload.status_code == 202
    body = upload.json()
    job = wait_for_job(api, body["job_id"])
    assert job["kind"] == "import" and job["status"] == "done" and job["error"] is None
    assert job["progress"] == {"done": 3, "total": 3, "percent": 100}
    assert job["result"]["batch_id"] == body["id"] and job["result"]["counts"]["created"] == 2
    assert job["attempts"] == 1 and job["finished_at"] is not None
    batch = api.get(body["progress_url"]).json()
    assert batch["status"] == "done" and batch["job_id"] == body["job_id"] and batch["job_url"] == body["job_url"]

    listed = cli("jobs", "list")
    assert listed.exit_code == 0, listed.output
    assert f"{body['job_id']}" in listed.output and "import" in listed.output and "done" in listed.output
    shown = cli("jobs", "show", str(body["job_id"]))
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["result"]["counts"]["created"] == 2
    assert "no jobs" in cli("jobs", "list", "--status", "failed").output
    bad = cli("jobs", "list", "--status", "stuck")
    assert bad.exit_code == 1 and "invalid_input" in bad.output


def test_without_a_worker_an_upload_waits_then_a_worker_runs_it(idle: TestClient, cli_env: dict[str, str]) -> None:
    body = idle.post("/api/imports", files={"file": ("people.csv", PEOPLE, "text/csv")}).json()
    job = idle.get(body["job_url"]).json()
    assert job["status"] == "queued" and job["progress"]["done"] == 0 and job["attempts"] == 0
    assert idle.get(body["progress_url"]).json()["status"] == "pending"

    assert cli("worker", "--once").exit_code == 0
    assert idle.get(body["job_url"]).json()["status"] == "done"
    assert idle.get(body["progress_url"]).json()["status"] == "done"
    assert idle.get("/api/contacts").json()["total"] == 2


def test_a_failing_import_fails_its_job_with_the_batch_reason(api: Any) -> None:
    upload = api.post("/api/imports", files={"file": ("x.csv", b"colour,size\nred,9\n", "text/csv")}).json()
    job = wait_for_job(api, upload["job_id"])
    batch = api.get(upload["progress_url"]).json()
    assert job["status"] == "failed" and batch["status"] == "failed"
    assert job["error"] == batch["error"] and job["error"]["code"] == "invalid_input"


def test_a_job_that_keeps_crashing_fails_with_a_reason_and_its_batch_is_rolled_back(
    runtime: Runtime, clock: FrozenClock, idle: TestClient, cli_env: dict[str, str]
) -> None:
    body = idle.post("/api/imports", files={"file": ("people.csv", PEOPLE, "text/csv")}).json()
    lease = dt.timedelta(seconds=runtime.settings.job_lease_seconds)
    for attempt in (1, 2, 3):  # three workers claim it and die before finishing
        with runtime.engine.begin() as conn:
            held = store.claim(conn, now=clock.now(), worker=f"doomed-{attempt}", lease=lease)
        assert held is not None and held.attempts == attempt
        assert idle.get(body["job_url"]).json()["status"] == "running"
        clock.advance(lease + dt.timedelta(seconds=1))

    assert cli("worker", "--once").exit_code == 0  # the fourth claim gives up instead of looping for ever
    job = idle.get(body["job_url"]).json()
    assert job["status"] == "failed" and job["error"]["code"] == "job_interrupted"
    assert "Interrupted 3 times" in job["error"]["message"]
    batch = idle.get(body["progress_url"]).json()
    assert batch["status"] == "failed" and batch["error"]["code"] == "job_interrupted"
    assert idle.get("/api/contacts").json()["total"] == 0


def test_a_stale_worker_can_change_nothing_once_its_job_was_taken_over(runtime: Runtime, clock: FrozenClock) -> None:
    with runtime.engine.begin() as conn:
        job_id = store.enqueue(conn, "import", {"batch_id": 0}, now=clock.now())
    lease = dt.timedelta(seconds=5)
    with runtime.engine.begin() as conn:
        first = store.claim(conn, now=clock.now(), worker="a", lease=lease)
    with runtime.engine.begin() as conn:
        assert store.claim(conn, now=clock.now(), worker="b", lease=lease) is None  # leased: nobody else
    clock.advance(dt.timedelta(seconds=6))
    with runtime.engine.begin() as conn:
        second = store.claim(conn, now=clock.now(), worker="b", lease=lease)
    assert first is not None and second is not None and second.id == first.id == job_id
    assert second.token == first.token + 1 and second.attempts == 2
    with runtime.engine.begin() as conn:
        assert not store.fenced(conn, first, {"status": "done"})  # the late completion is refused
        assert store.fenced(conn, second, {"progress_done": 7})
    job = store.get_job(runtime.engine, job_id)
    assert job["status"] == "running" and job["worker"] == "b" and job["progress"]["done"] == 7


def test_duplicate_scans_are_jobs_and_one_runs_at_a_time(idle: TestClient, cli_env: dict[str, str]) -> None:
    first = idle.post("/api/duplicates/scan")
    assert first.status_code == 202 and first.json()["queued"] is True
    again = idle.post("/api/duplicates/scan", params={"threshold": 90}).json()
    assert again["job_id"] == first.json()["job_id"] and again["queued"] is False  # the queued one is returned
    assert cli("worker", "--once").exit_code == 0
    job = idle.get(first.json()["progress_url"]).json()
    assert job["kind"] == "duplicate_scan" and job["status"] == "done"
    assert job["result"] == {"new": 0, "refreshed": 0, "withdrawn": 0, "open_total": 0}
    assert idle.post("/api/duplicates/scan").json()["job_id"] != first.json()["job_id"]  # done: a new one


def test_a_scheduled_backup_runs_as_a_job(
    runtime: Runtime, idle: TestClient, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_BACKUP_SCHEDULE", "daily")
    assert cli("worker", "--once").exit_code == 0
    [job] = store.list_jobs(runtime.engine, kind="backup")
    assert job["status"] == "done" and Path(job["result"]["path"]).exists()
    assert idle.get(f"/api/jobs/{job['id']}").json()["result"] == job["result"]
    listed = cli("jobs", "list", "--kind", "backup").stdout
    assert "backup" in listed and "done" in listed, listed
    assert cli("worker", "--once").exit_code == 0
    assert len(store.list_jobs(runtime.engine, kind="backup")) == 1  # not due again today


def test_unknown_and_malformed_job_ids(api: Any) -> None:
    missing = api.get("/api/jobs/999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    for value in ("abc", "0", "-1", "99999999999999999999"):
        response = api.get(f"/api/jobs/{value}")
        assert response.status_code == 422 and response.json()["error"]["code"], value
    assert cli("jobs", "show", "999").exit_code == 1


def test_the_import_page_says_it_waits_for_a_worker_then_shows_the_result(
    runtime: Runtime, clock: FrozenClock, cli_env: dict[str, str]
) -> None:
    from herald.auth import users
    from tests.integration.test_auth import PASSWORD, _csrf, make_admin

    admin = make_admin(runtime.engine, clock)
    actor = admin.actor()
    user = in_unit(
        runtime.engine, clock, actor, users.create_user, email="m@example.com", password=PASSWORD, role="marketer"
    )
    in_unit(runtime.engine, clock, admin.actor(), users.relax_2fa, user.id, "a shared kiosk for the test")
    with TestClient(create_app(runtime), follow_redirects=False) as page:  # like `herald serve --no-worker`
        token = _csrf(page.get("/login").text)
        page.post("/login", data={"csrf_token": token, "email": "m@example.com", "password": PASSWORD})
        token = _csrf(page.get("/imports").text)
        started = page.post("/imports", data={"csrf_token": token}, files={"file": ("people.csv", PEOPLE)})
        assert started.status_code == 303, started.text
        batch_url = started.headers["location"]
        waiting = page.get(batch_url + "/progress").text
        assert 'data-testid="import-waiting"' in waiting and "waiting for a worker" in waiting
        assert cli("worker", "--once").exit_code == 0
        done = page.get(batch_url + "/progress").text
        assert "waiting for a worker" not in done and 'data-status="done"' in done
