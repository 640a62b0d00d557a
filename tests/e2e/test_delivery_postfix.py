"""HTTP API → ledger → worker → the real postfix: `herald serve` plus two `herald worker` processes, each mail once."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from herald.db.delivery_tables import messages
from tests.helpers import free_port, postfix_address

HERALD = str(Path(sys.executable).with_name("herald"))
MAILBOX = Path("/var/mail/root")
COUNT = 40


@pytest.fixture
def processes(cli_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    host, port = postfix_address()
    env = (
        os.environ
        | cli_env
        | {
            "HERALD_SMTP_HOST": host,
            "HERALD_SMTP_PORT": str(port),
            "HERALD_SMTP_SECURITY": "plain",
            "HERALD_EMAIL_FROM": "herald@localhost",
            "HERALD_EMBEDDED_SIMULATOR": "false",
            "HERALD_QUIET_EXEMPT_TRANSACTIONAL": "true",
        }
    )
    http_port = free_port()
    log = (tmp_path / "procs.log").open("wb")
    procs = [subprocess.Popen([HERALD, "serve", "--port", str(http_port)], env=env, stdout=log, stderr=log)]
    procs += [subprocess.Popen([HERALD, "worker", "--concurrency", "4"], env=env, stdout=log, stderr=log) for _ in "ab"]
    base = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (tmp_path / "procs.log").read_text()
                time.sleep(0.1)
        yield base, env
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)
        log.close()


def _copies(run_id: str) -> Counter[str]:
    box = mailbox.mbox(MAILBOX, create=False)
    try:
        return Counter(str(m["Subject"]) for m in box if str(m.get("Subject", "")).startswith(f"postfix {run_id} "))
    finally:
        box.close()


@pytest.mark.slow
def test_api_to_postfix_exactly_once(processes: tuple[str, dict[str, str]], engine: sa.Engine) -> None:
    base, env = processes
    key = (
        subprocess.run(
            [HERALD, "apikey", "create", "--name", "e2e"], env=env, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    headers = {"Authorization": f"Bearer {key}"}
    run_id = uuid.uuid4().hex[:10]
    ids = []
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for i in range(COUNT):
            body = {
                "email": "root@localhost.localdomain",
                "class": "transactional",
                "channels": ["email"],
                "content": {"email": {"subject": f"postfix {run_id} {i}", "text": f"Number {i}."}},
            }
            # Every request is sent twice, as a client retrying after a timeout would.
            first = client.post("/api/messages", json=body, headers={"Idempotency-Key": f"{run_id}-{i}"})
            again = client.post("/api/messages", json=body, headers={"Idempotency-Key": f"{run_id}-{i}"})
            assert first.status_code == again.status_code == 202
            assert first.json() == again.json()
            ids.append(first.json()["id"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = Counter(client.get(f"/api/messages/{i}").json()["status"] for i in ids)
            if statuses == {"sent": COUNT}:
                break
            time.sleep(0.3)
        assert statuses == {"sent": COUNT}
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(messages)) == COUNT
        workers = Counter(conn.execute(sa.select(messages.c.worker)).scalars())
    print("rows completed per worker process:", dict(workers))
    deadline = time.monotonic() + 60
    copies = _copies(run_id)
    while len(copies) < COUNT and time.monotonic() < deadline:
        time.sleep(0.5)  # postfix delivers to the mbox asynchronously
        copies = _copies(run_id)
    assert sorted(copies) == sorted(f"postfix {run_id} {i}" for i in range(COUNT))
    assert set(copies.values()) == {1}  # no crash here: exactly once, strictly
