"""A new user's first hour, through the CLI, the API and the set-up page, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.api.app import create_app
from herald.cli import common
from herald.cli.common import database_label
from herald.core.clock import FrozenClock
from herald.core.settings import Settings
from herald.db.runtime import Runtime, open_runtime
from herald.delivery import heartbeat
from herald.worker.loop import run_worker
from tests.helpers import cli

NIGHT = dt.datetime(2026, 11, 22, 3, 37, tzinfo=dt.UTC)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def night_cli(cli_env: dict[str, str], clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """The CLI on this test's database, with the test's clock (the real runtime, only time is frozen)."""
    clock.set(NIGHT)
    monkeypatch.setattr(common, "open_runtime", lambda settings: open_runtime(settings, clock))
    return clock


def _send(*args: str) -> tuple[dict[str, Any], str]:
    result = cli("messages", "send", "--subject", "Reset your password", "--text", "Your code: 123456", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def _words(output: str) -> str:
    """Usage errors come in a rich box that wraps lines: compare words only."""
    return re.sub(r"[\s│╭╮╰╯─]+", " ", output)


def _show(message_id: int) -> dict[str, Any]:
    result = cli("messages", "show", str(message_id))
    assert result.exit_code == 0, result.output
    detail: dict[str, Any] = json.loads(result.stdout)
    return detail


# --- quiet hours --------------------------------------------------------------------------------------


@pytest.mark.usefixtures("night_cli")
def test_a_transactional_send_at_0337_utc_goes_now_and_says_why(api: TestClient) -> None:
    body, _ = _send("--to", "pat@example.com", "--class", "transactional")
    assert body["status"] == "queued" and body["hold_reason"] is None
    assert dt.datetime.fromisoformat(body["available_at"]) == NIGHT  # not 18:00 UTC, 14 hours later
    shown = _show(body["id"])
    assert (shown["quiet_zone"], shown["quiet_window"]) == ("unknown", "exempt: transactional")
    detail = api.get(f"/api/messages/{body['id']}").json()
    assert (detail["quiet_zone"], detail["quiet_window"]) == ("unknown", "exempt: transactional")

    # Incident notices keep quiet hours: with no known zone, every US zone must be awake (08:00 in Adak).
    notice, _ = _send("--to", "pat@example.com", "--class", "incident")
    assert (notice["status"], notice["hold_reason"]) == ("held", "quiet_hours")
    assert dt.datetime.fromisoformat(notice["available_at"]) == dt.datetime(2026, 11, 22, 18, 0, tzinfo=dt.UTC)
    shown = _show(notice["id"])
    assert shown["quiet_window"] == "08:00-20:00 local, every day"
    assert re.fullmatch(r"every zone of US \(\d+; zone unknown\)", shown["quiet_zone"])


@pytest.mark.usefixtures("night_cli")
def test_the_transactional_exemption_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_QUIET_EXEMPT_TRANSACTIONAL", "false")
    body, _ = _send("--to", "pat@example.com", "--class", "transactional")
    assert (body["status"], body["hold_reason"]) == ("held", "quiet_hours")
    assert dt.datetime.fromisoformat(body["available_at"]) == dt.datetime(2026, 11, 22, 18, 0, tzinfo=dt.UTC)
    assert _show(body["id"])["quiet_window"] == "08:00-20:00 local, every day"


# --- messages send: recipient, idempotency key, worker hint -------------------------------------------


@pytest.mark.usefixtures("night_cli")
def test_a_missing_idempotency_key_is_made_printed_and_reusable() -> None:
    body, stderr = _send("--to", "kim@example.com")
    key = re.search(r"idempotency key: (cli-[0-9a-f]{32})", stderr)
    assert key is not None, stderr
    again, again_err = _send("--to", "kim@example.com", "--idempotency-key", key.group(1))
    assert again == body  # the printed key replays the same send: one row, one delivery
    assert "idempotency key:" not in again_err
    other, _ = _send("--to", "kim@example.com")
    assert other["id"] != body["id"]


def test_the_worker_hint_follows_the_heartbeat(night_cli: FrozenClock, settings: Settings) -> None:
    _, stderr = _send("--to", "lee@example.com", "--idempotency-key", "h-1")
    assert "no worker is running: start `herald worker` or `herald serve`" in stderr
    runtime = open_runtime(settings, night_cli)
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(runtime,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not heartbeat.live_workers(runtime) and time.monotonic() < deadline:
            time.sleep(0.05)
        _, stderr = _send("--to", "lee@example.com", "--idempotency-key", "h-2")
        assert "no worker is running" not in stderr
    finally:
        stop.set()
        thread.join(timeout=20)
        runtime.close()
    assert not thread.is_alive()
    # A worker that stops cleanly removes its row at once.
    _, stderr = _send("--to", "lee@example.com", "--idempotency-key", "h-3")
    assert "no worker is running" in stderr
    # One that died without cleaning up counts only until its heartbeat is FRESH_FOR old.
    runtime = open_runtime(settings, night_cli)
    try:
        heartbeat.beat(runtime, "crashed:1", night_cli.now())
        assert heartbeat.live_workers(runtime) == ["crashed:1"]
        night_cli.advance(heartbeat.FRESH_FOR + dt.timedelta(seconds=1))
        assert heartbeat.live_workers(runtime) == []
    finally:
        runtime.close()


@pytest.mark.usefixtures("night_cli")
def test_worker_once_delivers_what_is_due_and_exits_cleanly(settings: Settings) -> None:
    body, _ = _send("--to", "max@example.com", "--idempotency-key", "w-1")
    result = cli("worker", "--once")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert _show(body["id"])["status"] == "sent"
    assert len(list((settings.data_dir / "maildir" / "new").iterdir())) == 1


@pytest.mark.usefixtures("night_cli")
def test_send_to_a_person_by_id_uses_their_address_per_channel(api: TestClient) -> None:
    made = api.post("/api/contacts", json={"emails": ["ana@example.com"], "phones": ["+1 212 736 5000"]})
    person = made.json()["id"]
    result_args = ("--subject", "Hi", "--text", "Hello")
    result = cli("messages", "send", "--person", str(person), "--channel", "sms", "--channel", "email", *result_args)
    assert result.exit_code == 0, result.output
    shown = _show(json.loads(result.stdout)["id"])
    assert shown["person_id"] == person
    assert shown["addresses"] == {"sms": "+12127365000", "email": "ana@example.com"}
    both = cli("messages", "send", "--person", str(person), "--to", "ana@example.com", *result_args)
    assert both.exit_code == 2 and "exactly one of --to or --person" in _words(both.output)
    missing = cli("messages", "send", "--person", "999999", *result_args)
    assert missing.exit_code == 1 and "error (not_found)" in missing.output


@pytest.mark.usefixtures("night_cli")
def test_a_phone_as_contacts_list_shows_it_is_read_with_the_persons_country(api: TestClient) -> None:
    paris = api.post("/api/contacts", json={"phones": ["01 42 68 53 00"], "country": "FR", "first_name": "Zoe"})
    assert paris.status_code == 201, paris.text
    listed = cli("contacts", "list", "Zoe")
    shown = re.search(r"Zoe\s+(.+)$", listed.stdout, re.M)  # rich prints the tab as spaces
    assert shown is not None and shown.group(1) == "01 42 68 53 00"
    body, _ = _send("--to", shown.group(1), "--channel", "sms")
    detail = _show(body["id"])
    assert detail["person_id"] == paris.json()["id"]
    assert detail["addresses"] == {"sms": "+33142685300"}
    # A national number nobody has is still read in the default region (a new contact, as before).
    body, _ = _send("--to", "(212) 736-5000", "--channel", "sms")
    assert _show(body["id"])["addresses"] == {"sms": "+12127365000"}


# --- templates: the short form ------------------------------------------------------------------------


@pytest.mark.usefixtures("night_cli")
def test_templates_read_contact_fields_by_their_short_name(api: TestClient, settings: Settings) -> None:
    api.post("/api/contacts", json={"emails": ["bo@example.com"], "first_name": "Bo", "attributes": {"plan": "pro"}})
    result = cli(
        "messages", "send", "--to", "bo@example.com", "--subject", "Hi {{ first_name }}",
        "--text", "{{ contact.first_name }} on {{ plan }}; ref {{ ref }}", "--var", "ref=A1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert cli("worker", "--once").exit_code == 0
    mail = next((settings.data_dir / "maildir" / "new").iterdir()).read_text()
    assert "Subject: Hi Bo" in mail and "Bo on pro; ref A1" in mail
    assert cli("messages", "send", "--to", "bo@example.com", "--var", "oops").exit_code == 2


def test_send_help_lists_the_template_names() -> None:
    text = cli("messages", "send", "--help").stdout
    for name in ("first_name", "last_name", "company", "email", "phone", "contact.first_name"):
        assert name in text


# --- which database -----------------------------------------------------------------------------------


def test_data_commands_say_which_database_and_leave_no_stray_folder(
    cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("HERALD_DATA_DIR")
    result = cli("db", "current")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == f"database: {database_label(cli_env['HERALD_DATABASE_URL'])}"
    assert "database:" not in result.stdout
    assert cli("contacts", "list").exit_code == 0
    assert list(elsewhere.iterdir()) == []  # no herald-data/ next to wherever the command ran


def test_the_database_line_masks_passwords() -> None:
    assert database_label("postgresql+psycopg://herald:s3cret@db.example:5432/herald") == (
        "postgresql+psycopg://herald:***@db.example:5432/herald"
    )
    assert database_label("sqlite:////srv/herald/herald.db") == "sqlite:////srv/herald/herald.db"


# --- the set-up page ------------------------------------------------------------------------------------


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match is not None, "the page carries no CSRF token"
    return match.group(1)


def test_setup_works_after_a_failed_first_try(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime), follow_redirects=False)
    page = client.get("/setup")
    first = {"email": "boss@example.com", "password": "short", "password_confirm": "short"}
    failed = client.post("/setup", data={"csrf_token": _csrf(page.text), **first})
    assert failed.status_code == 422
    mismatch = {"email": "boss@example.com", "password": PASSWORD, "password_confirm": PASSWORD + "!"}
    failed_again = client.post("/setup", data={"csrf_token": _csrf(failed.text), **mismatch})
    assert failed_again.status_code == 422 and "The two passwords differ." in failed_again.text
    right = {"email": "boss@example.com", "password": PASSWORD, "password_confirm": PASSWORD}
    done = client.post("/setup", data={"csrf_token": _csrf(failed_again.text), **right})
    assert done.status_code == 303 and done.headers["location"] == "/login/enrol"
