"""A campaign paused and resumed while a `herald worker` delivers it to an SMTP sink: every recipient once.

Needs the worker to render campaign rows at claim time (they carry a template version and variables, no
content): that is the worker's part of issue #10; on a branch without it nothing can be sent.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from herald.db.runtime import Runtime
from tests.helpers import smtp_server
from tests.integration.test_campaigns import EVERYONE, _launch, _rows, _segment, _subscribed, _template

HERALD = str(Path(sys.executable).with_name("herald"))
COUNT = 120


class Sink:
    """Accepts every message, slowly enough that a pause lands mid-campaign; counts copies per recipient."""

    def __init__(self) -> None:
        self.copies: Counter[str] = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.03)
        with self.lock:
            self.copies.update(envelope.rcpt_tos)
        return "250 OK"

    def total(self) -> int:
        with self.lock:
            return sum(self.copies.values())


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    with smtp_server(handler) as port:
        yield handler, port


def _wait(predicate: Any, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_pause_and_resume_at_a_relay_send_each_person_once(
    api: TestClient, runtime: Runtime, cli_env: dict[str, str], sink: tuple[Sink, int], tmp_path: Path
) -> None:
    if importlib.util.find_spec("herald.delivery.render_at_claim") is None:
        pytest.fail("the worker cannot render campaign rows at claim on this branch (h/worker brings it)")
    handler, port = sink
    _template(api)
    people = [
        _subscribed(api, f"p{i}@example.test", first_name=f"P{i}", timezone="Europe/London") for i in range(COUNT)
    ]
    body = {"name": "Relay", "template_id": "winter-sale", "segment_id": _segment(runtime, EVERYONE),
            "channels": ["email"], "message_class": "transactional"}  # fmt: skip
    cid = api.post("/api/campaigns", json=body).json()["id"]
    _launch(api, cid)
    env = os.environ | cli_env | {
        "HERALD_SMTP_HOST": "127.0.0.1", "HERALD_SMTP_PORT": str(port), "HERALD_SMTP_SECURITY": "plain",
        "HERALD_EMBEDDED_SIMULATOR": "false", "HERALD_DELIVERY_BATCH_SIZE": "10", "HERALD_BACKUP_SCHEDULE": "off",
    }  # fmt: skip
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([HERALD, "worker", "--concurrency", "2"], env=env, stdout=out, stderr=out)
        try:
            _wait(lambda: handler.total() >= 10, 60, "the first deliveries", log)
            paused = api.post(f"/api/campaigns/{cid}/pause")
            assert paused.status_code == 200, paused.text
            assert paused.json()["changed"] > 0
            # Rows already being sent finish; after that nothing more arrives while paused.
            _wait(lambda: not any(r["status"] == "sending" for r in _rows(runtime, cid)), 30, "in-flight rows", log)
            settled = handler.total()
            time.sleep(1.5)
            assert handler.total() == settled < COUNT
            held = [r for r in _rows(runtime, cid) if r["status"] == "held"]
            assert held and all(r["hold_reason"] == "paused:queued" for r in held)

            assert api.post(f"/api/campaigns/{cid}/resume").status_code == 200
            _wait(lambda: handler.total() >= COUNT, 120, "every delivery", log)
            _wait(lambda: all(r["status"] == "sent" for r in _rows(runtime, cid)), 30, "every row sent", log)
            time.sleep(0.5)  # a duplicate, if any, would arrive now
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    assert len(people) == COUNT
    assert handler.copies == Counter({f"p{i}@example.test": 1 for i in range(COUNT)})
