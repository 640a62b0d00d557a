"""Build an Engine for SQLite (WAL, embedded) or PostgreSQL from one URL."""

from __future__ import annotations

import sqlite3
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


def _sqlite_begin(conn: sa.Connection) -> None:
    # A deferred BEGIN lets two writers both read, then deadlock when they upgrade to write;
    # BEGIN IMMEDIATE takes the write lock up front (ARCHITECTURE.md §3). Connections opened with
    # read_connection() never write, and WAL readers never block, so they begin deferred.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
        event.listen(engine, "begin", _sqlite_begin)
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
