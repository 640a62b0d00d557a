"""`herald serve` and `herald worker` as real processes: migration gate, port check, banner, worker exit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

HERALD = str(Path(sys.executable).with_name("herald"))


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HERALD, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def server(cli_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    env = {**os.environ, **cli_env, "HERALD_BACKUP_SCHEDULE": "daily", "HERALD_BACKUP_DIR": str(tmp_path / "bk")}
    port = free_port()
    proc = subprocess.Popen(
        [HERALD, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            proc.kill()
            raise AssertionError(proc.communicate()[0])
        yield base, env
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_served_api_and_embedded_worker(server: tuple[str, dict[str, str]]) -> None:
    base, env = server
    assert httpx.get(f"{base}/api/contacts").json()["error"]["code"] == "unauthorized"
    key = run(env, "apikey", "create", "--name", "e2e").stdout.strip().splitlines()[-1]
    headers = {"Authorization": f"Bearer {key}"}
    created = httpx.post(f"{base}/api/contacts", json={"emails": ["srv@example.com"]}, headers=headers)
    assert created.status_code == 201
    assert httpx.get(f"{base}/openapi.json").json()["paths"]["/api/contacts"]
    # The embedded worker runs the scheduled (daily) backup on its own, verified.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = httpx.get(f"{base}/api/backups", headers=headers).json()
        if listed.get("last_verified"):
            break
        time.sleep(0.2)
    assert listed["last_verified"]["kind"] == "scheduled"


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = {**os.environ, "HERALD_DATA_DIR": str(tmp_path / "fresh"), "HERALD_DATABASE_URL": "", "CI": "true"}
    result = run(env, "serve", "--port", str(free_port()))
    assert result.returncode == 1
    assert "herald db upgrade" in result.stderr + result.stdout


def test_serve_on_a_busy_port_fails_clearly_before_claiming_to_run(cli_env: dict[str, str]) -> None:
    env = {**os.environ, **cli_env}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(env, "serve", "--port", str(port))
    assert result.returncode == 1
    assert "running at" not in result.stdout + result.stderr
    assert f"error (port_in_use): Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--port or HERALD_PORT" in result.stderr


def test_the_banner_appears_once_the_socket_is_listening(cli_env: dict[str, str]) -> None:
    env = {**os.environ, **cli_env}
    port = free_port()
    proc = subprocess.Popen(
        [HERALD, "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the banner (or exit)
        assert line.startswith(f"Herald is running at http://127.0.0.1:{port}/"), line + proc.stderr.read()
        # Checked right after the banner, with no retry: the socket already accepts and answers.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.stderr is not None
    assert "database: " in proc.stderr.read()


def test_worker_once_exits_cleanly_after_starting_providers(cli_env: dict[str, str]) -> None:
    env = {**os.environ, **cli_env}
    # An SMS makes the pass start the embedded Twilio simulator (a thread with its own event loop).
    sent = run(env, "messages", "send", "--to", "+12127365000", "--channel", "sms", "--text", "Your code: 1")
    assert sent.returncode == 0, sent.stderr
    assert "hint: no worker is running" in sent.stderr
    result = run(env, "worker", "--once")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    message_id = json.loads(sent.stdout)["id"]
    assert json.loads(run(env, "messages", "show", str(message_id)).stdout)["status"] == "sent"
