"""Housekeeping for the delivery tables: prune Idempotency-Key records past their retention."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from herald.db.delivery_tables import idempotency_keys
from herald.db.runtime import Runtime
from herald.delivery.settings import delivery_settings

BATCH = 5000


def prune_idempotency_keys(runtime: Runtime) -> int:
    """Delete records older than the retention; returns how many went.

    A replay after that is planned again, but derives the same message key from the same
    Idempotency-Key, so the ledger's unique (person, message key) still refuses a second message.
    """
    hours = delivery_settings(runtime).idempotency_retention_hours
    cutoff = runtime.clock.now() - dt.timedelta(hours=hours)
    removed = 0
    while True:
        with runtime.engine.begin() as conn:
            # Small batches keep each write transaction (and SQLite's lock) short.
            old = sa.select(idempotency_keys.c.id).where(idempotency_keys.c.created_at < cutoff).limit(BATCH)
            done = conn.execute(idempotency_keys.delete().where(idempotency_keys.c.id.in_(old))).rowcount or 0
        removed += done
        if done < BATCH:
            return removed
