"""Readers never queue behind a writer: a read connection works while a write transaction is open."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from herald.db.apikeys_tables import api_keys
from herald.db.engine import read_connection


def test_reads_proceed_while_a_writer_holds_its_transaction(engine: sa.Engine) -> None:
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    with engine.begin() as writer:  # BEGIN IMMEDIATE on SQLite: the write lock is held from here
        writer.execute(api_keys.insert().values(name="w", prefix="hk_", key_hash="x" * 64, created_at=now))
        with read_connection(engine) as reader:
            # Blocked readers would wait out the 30 s busy timeout and fail with "database is locked".
            assert reader.scalar(sa.select(sa.func.count()).select_from(api_keys)) == 0
    with read_connection(engine) as reader:
        assert reader.scalar(sa.select(sa.func.count()).select_from(api_keys)) == 1
