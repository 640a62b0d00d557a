"""`herald serve` as a real process: migrated-database gate, API keys, and the embedded worker."""

from __future__ import annotations

import os
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
