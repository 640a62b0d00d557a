"""Writers of one process hand the database over as soon as a transaction ends, however it ends.

On SQLite they take turns on an in-process lock before BEGIN IMMEDIATE; a turn left behind would make
every later writer wait out the 30 s timeout. Each case ends a write transaction in its own way, then a
writer on another thread must get in well before that. (On PostgreSQL the same sequences must simply work.)
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from herald.db.apikeys_tables import api_keys

NOW = dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
LIVENESS_SECONDS = 10.0  # far under the 30 s a leaked turn would cost, far over any hand-off


class Boom(Exception):
    pass


def _insert(conn: sa.Connection, name: str) -> None:
    conn.execute(api_keys.insert().values(name=name, prefix="hk_", key_hash=name.ljust(64, "x"), created_at=NOW))


def _writer_on_another_thread(engine: sa.Engine, name: str) -> bool:
    done = threading.Event()

    def write() -> None:
        with engine.begin() as conn:
            _insert(conn, name)
        done.set()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return done.wait(LIVENESS_SECONDS)


def _commit(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _insert(conn, "committed")


def _raise_inside(engine: sa.Engine) -> None:
    with pytest.raises(Boom), engine.begin() as conn:
        _insert(conn, "rolled-back")
        raise Boom


def _explicit_rollback(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.begin()
        _insert(conn, "rolled-back")
        conn.rollback()


def _two_transactions_on_one_connection(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        for name in ("first", "second"):
            with conn.begin():
                _insert(conn, name)


def _closed_mid_transaction(engine: sa.Engine) -> None:
    conn = engine.connect()
    conn.begin()
    _insert(conn, "abandoned")
    conn.close()


def _invalidated_mid_transaction(engine: sa.Engine) -> None:
    conn = engine.connect()
    conn.begin()
    _insert(conn, "invalidated")
    conn.invalidate()  # as after a lost connection: the driver connection is closed under the transaction
    conn.rollback()
    conn.close()


def _integrity_error(engine: sa.Engine) -> None:
    _commit(engine)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        _insert(conn, "committed")  # same key_hash: unique violation mid-transaction


ENDINGS: dict[str, Callable[[sa.Engine], None]] = {
    "commit": _commit,
    "exception": _raise_inside,
    "rollback": _explicit_rollback,
    "two transactions": _two_transactions_on_one_connection,
    "closed": _closed_mid_transaction,
    "invalidated": _invalidated_mid_transaction,
    "integrity error": _integrity_error,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_the_next_writer_gets_in_after_any_ending(engine: sa.Engine, ending: str) -> None:
    ENDINGS[ending](engine)
    assert _writer_on_another_thread(engine, "next"), f"a writer waited after {ending}"
    assert _writer_on_another_thread(engine, "and the one after")


def test_writers_on_many_threads_all_commit(engine: sa.Engine) -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(20):
                with engine.begin() as conn:
                    _insert(conn, f"t{n}-{i}")
        except BaseException as exc:  # reported below, from the test thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(api_keys)) == 120
