"""A batch claimed ahead by a SIGKILLed `herald worker` comes back when its lease ends and is sent exactly once.

The relay (tests/e2e/smtp_sink.py, its own process) is frozen with SIGSTOP before the worker starts, so the
worker's first sends hang before any final dot while it claims the next batch ahead of them; it is killed
holding more rows than one batch. Its attempts carry no wire mark, so none may become sent_unconfirmed:
after the lease, a second worker re-sends each of them once.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

from herald.core.clock import SystemClock
from herald.core.settings import Settings
from herald.db.delivery_tables import message_attempts, messages
from herald.db.runtime import Runtime
from tests.e2e.test_wire_marks_crash import HOST, SinkLog, Workers, _enqueue, _env, _pending, sink_process

BATCH, COUNT = 8, 40


def _held_by(engine: sa.Engine, pid: int) -> tuple[int, int]:
    """(rows the worker holds in `sending`, its attempts recorded `submitting`)."""
    worker = f"{HOST}:{pid}:%"
    with engine.connect() as conn:
        rows = conn.scalar(
            sa.select(sa.func.count()).where(messages.c.status == "sending", messages.c.worker.like(worker))
        )
        attempts = conn.scalar(
            sa.select(sa.func.count()).where(
                message_attempts.c.status == "submitting", message_attempts.c.worker.like(worker)
            )
        )
    return int(rows or 0), int(attempts or 0)


def _open_attempts(engine: sa.Engine, pid: int) -> set[int]:
    with engine.connect() as conn:
        query = sa.select(message_attempts.c.id).where(
            message_attempts.c.status == "submitting", message_attempts.c.worker.like(f"{HOST}:{pid}:%")
        )
        return set(conn.scalars(query))


def test_rows_a_killed_worker_claimed_ahead_are_sent_exactly_once(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings=settings, engine=engine, clock=SystemClock())
    ids = _enqueue(runtime, uuid.uuid4().hex[:10], 0, COUNT)
    sink_file = tmp_path / "sink.log"
    sink_file.touch()
    with sink_process(sink_file) as (port, sink):
        env = _env(settings, port) | {
            "HERALD_DELIVERY_BATCH_SIZE": str(BATCH),
            # Long enough that the frozen relay's hung sends are still waiting (not cut off) when the kill lands.
            "HERALD_DELIVERY_LEASE_SECONDS": "6",
        }
        workers = Workers(env, tmp_path / "workers.log")  # `herald worker --concurrency 4`
        sink.send_signal(signal.SIGSTOP)
        victim = workers.start()
        try:
            deadline = time.monotonic() + 30
            held = (0, 0)
            while time.monotonic() < deadline and held[0] <= BATCH:
                held = _held_by(engine, victim.pid)
                assert victim.poll() is None, (tmp_path / "workers.log").read_text(errors="replace")[-3000:]
                time.sleep(0.02)
            # More rows than one batch: the next one was claimed while the first one's sends hung.
            assert held[0] > BATCH, held
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            rows_held, attempts_open = _held_by(engine, victim.pid)
            assert rows_held == attempts_open > BATCH  # every claimed row's attempt left `submitting`
            left = _open_attempts(engine, victim.pid)
            sink.send_signal(signal.SIGCONT)
            workers.start()  # takes the rows over once their lease has run out
            deadline = time.monotonic() + 90
            while _pending(engine) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            workers.stop_all()
        assert _pending(engine) == 0, (tmp_path / "workers.log").read_text(errors="replace")[-3000:]
        time.sleep(0.5)
        at_sink = Counter(SinkLog(sink_file).all())

    with engine.connect() as conn:
        statuses = Counter(conn.scalars(sa.select(messages.c.status)))
        attempts = [dict(a) for a in conn.execute(sa.select(message_attempts)).mappings()]
    victims = [a for a in attempts if a["id"] in left]
    assert statuses == {"sent": len(ids)}  # no mark was written, so nothing is sent_unconfirmed
    assert sum(at_sink.values()) == len(ids) and set(at_sink.values()) == {1}
    per_message = Counter(a["message_id"] for a in attempts)
    assert set(per_message.values()) == {1}  # the killed worker's attempts were re-submitted, not replaced
    assert len(victims) == rows_held
    assert all(a["resubmissions"] == 1 and a["status"] == "sent" for a in victims), victims
    # (A re-submission keeps the reference, so the sink saw each victim attempt's Message-ID once.)
    assert all(at_sink[f"<{a['reference']}@localhost>"] == 1 for a in attempts)
