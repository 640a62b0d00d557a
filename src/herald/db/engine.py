"""Build an Engine for SQLite (WAL, embedded) or PostgreSQL from one URL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError

from herald.core.errors import StorageUnavailableError

# The entry points (api, web, cli) hand the engine on to services without importing SQLAlchemy
# themselves (an import-linter contract); this is the name they annotate it with.
Engine = sa.Engine

READ_ONLY = "herald_read_only"
PG_DISK_FULL = "53100"


def dialect_insert(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can take ON CONFLICT clauses; SQLite and PostgreSQL share that syntax."""
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # Sorts and the id sets a segment count builds (`id IN (…)` over hundreds of thousands of people)
    # stay in memory instead of spilling to a temp file (a third faster).
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


class _WriterTurns:
    """This process's writers to one SQLite file take turns on a lock before BEGIN IMMEDIATE.

    SQLite itself lets only one writer in; a second one waits in its busy handler, which sleeps and polls
    (1, 2, 5, 10 … up to 100 ms), so a thread that queued behind a 150 ms batch often wakes tens of
    milliseconds after the lock came free. Threads of one process hand the turn over at once instead. Other
    processes still meet at SQLite's lock, as before. The turn ends when the transaction does (commit,
    rollback) or, as a safety net, when the connection is invalidated or returned to the pool.
    """

    KEY = "herald_writer_turn"
    WAIT_SECONDS = 30.0  # as long as SQLite's own busy timeout: past it, BEGIN IMMEDIATE decides

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def take(self, conn: sa.Connection) -> None:
        info = conn.connection.info
        if info.get(self.KEY) or not self._lock.acquire(timeout=self.WAIT_SECONDS):
            return
        info[self.KEY] = True

    def end(self, info: dict[Any, Any]) -> None:
        if info.pop(self.KEY, False):
            self._lock.release()

    def _ended(self, conn: sa.Connection) -> None:
        # An invalidated connection has no driver connection to ask (asking would reconnect); the pool's
        # invalidate event has ended its turn already.
        if not conn.invalidated:
            self.end(conn.connection.info)

    def listen(self, engine: sa.Engine) -> None:
        event.listen(engine, "commit", self._ended)
        event.listen(engine, "rollback", self._ended)
        event.listen(engine.pool, "checkin", lambda _dbapi, record: self.end(record.info))
        event.listen(engine.pool, "invalidate", lambda _dbapi, record, _exc: self.end(record.info))


def _sqlite_begin(turns: _WriterTurns) -> Any:
    def begin(conn: sa.Connection) -> None:
        # A deferred BEGIN lets two writers both read, then deadlock when they upgrade to write;
        # BEGIN IMMEDIATE takes the write lock up front (ARCHITECTURE.md §3). Connections opened with
        # read_connection() never write, and WAL readers never block, so they begin deferred.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            turns.take(conn)
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return begin


def read_connection(engine: sa.Engine) -> sa.Connection:
    """A connection for reads only: on SQLite it does not queue behind writers."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def is_disk_full(error: BaseException) -> bool:
    """SQLite's SQLITE_FULL ("database or disk is full") or PostgreSQL's 53100 disk_full."""
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return getattr(error, "sqlstate", None) == PG_DISK_FULL


def _translate_storage_errors(context: ExceptionContext) -> BaseException | None:
    # Translated at the adapter edge (ARCHITECTURE.md rule 4): callers see one HeraldError whatever the
    # engine, the API answers 503 with Retry-After, and the worker backs off instead of spinning.
    if context.original_exception is not None and is_disk_full(context.original_exception):
        return StorageUnavailableError(
            "The database cannot store anything right now (disk full); nothing was saved. Try again later."
        )
    return None


def create_db_engine(url: str, **kwargs: Any) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "isolation_level": None}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        turns = _WriterTurns()
        event.listen(engine, "begin", _sqlite_begin(turns))
        turns.listen(engine)
    else:
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        engine = sa.create_engine(url, **kwargs)
    event.listen(engine, "handle_error", _translate_storage_errors, retval=True)
    return engine


def redacted_url(url: str) -> str | None:
    """The database URL with its password masked, or None when it does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return None
