"""Worker heartbeats: each running worker touches its row every pass, so senders can tell whether one is alive."""

from __future__ import annotations

import datetime as dt
import os
import socket

import sqlalchemy as sa

from herald.db.delivery_tables import worker_heartbeats
from herald.db.engine import dialect_insert
from herald.db.runtime import Runtime

# A pass is bounded by HERALD_DELIVERY_PASS_SECONDS (5 s by default) and the loop polls every second, so a
# worker that has not been seen for this long is stopped or stuck, not busy.
FRESH_FOR = dt.timedelta(minutes=2)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


def beat(runtime: Runtime, worker: str, started_at: dt.datetime) -> None:
    """Record that `worker` is alive now (one small upsert per pass)."""
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        statement = dialect_insert(conn, worker_heartbeats).values(worker=worker, started_at=started_at, seen_at=now)
        conn.execute(statement.on_conflict_do_update(index_elements=["worker"], set_={"seen_at": now}))


def stopped(runtime: Runtime, worker: str) -> None:
    """A worker that exits cleanly removes its row at once instead of looking alive for FRESH_FOR."""
    with runtime.engine.begin() as conn:
        conn.execute(sa.delete(worker_heartbeats).where(worker_heartbeats.c.worker == worker))


def live_workers(runtime: Runtime) -> list[str]:
    """The workers seen within FRESH_FOR."""
    since = runtime.clock.now() - FRESH_FOR
    with runtime.engine.connect() as conn:
        rows = conn.execute(sa.select(worker_heartbeats.c.worker).where(worker_heartbeats.c.seen_at >= since)).scalars()
        return list(rows)
