"""Bulk inserts straight to the driver: one compiled statement, values converted once per batch.

SQLAlchemy's executemany runs every bind processor per value (JSON dumps, datetime formatting),
which costs more than the insert itself on the import path. Values here must already be plain.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb

from herald.db.types import UTCDateTime

# Bind variables per statement: under SQLite's default limit (32,766 since 3.32) and PostgreSQL's 65,535.
MAX_BINDS = 30_000

# Below this many rows an executemany is as quick as setting up a COPY.
COPY_FROM = 50

# The storage format SQLAlchemy's SQLite DateTime type writes and reads back.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _converter(column: sa.Column[Any], dialect: str) -> Any:
    if _is_json(column):
        return _sqlite_json if dialect == "sqlite" else Jsonb
    if isinstance(column.type, UTCDateTime):
        return _sqlite_datetime if dialect == "sqlite" else _aware
    return None


def _aware(value: dt.datetime) -> dt.datetime:
    # UTCDateTime refuses naive datetimes when it binds them; so does this path around it.
    if value.tzinfo is None:
        raise ValueError("naive datetime refused: store aware UTC datetimes only")
    return value


def _sqlite_json(value: Any) -> str:
    # Most people have no attributes, tags or locked fields: skip the encoder for empty containers.
    if not value and isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(value)


@lru_cache(maxsize=64)
def _sqlite_datetime(value: dt.datetime) -> str:
    # A batch stamps most rows with the same instant: format it once.
    return _aware(value).astimezone(dt.UTC).strftime(_SQLITE_DATETIME)


def _is_json(column: sa.Column[Any]) -> bool:
    kind = column.type
    variant = getattr(kind, "_variant_mapping", {})
    return isinstance(kind, sa.JSON) or any(isinstance(v, sa.JSON) for v in variant.values())


def bulk_insert(conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert tuples of values for `columns`; JSON and datetime columns are converted here."""
    if not rows:
        return
    dialect = conn.dialect.name
    mark = "?" if dialect == "sqlite" else "%s"
    quoted = _quoted(conn, columns)
    rows = _convert(conn, table, columns, rows)
    if dialect == "postgresql" and len(rows) >= COPY_FROM:
        _copy(conn, f"COPY {table.name} ({quoted}) FROM STDIN", rows)
        return
    sql = f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join(mark for _ in columns)})"  # noqa: S608 - names come from our own tables
    conn.exec_driver_sql(sql, list(rows))


def insert_returning(
    conn: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    conflict: Sequence[str],
    returning: Sequence[str],
) -> list[tuple[Any, ...]]:
    """Multi-row `INSERT … ON CONFLICT (conflict) DO NOTHING RETURNING …` (both engines speak it), one
    statement per slice of rows small enough for any bind-variable limit. Returns the inserted rows' `returning`
    values, in no promised order (match them on a key); rows that hit the conflict return nothing."""
    if not rows:
        return []
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    per_statement = max(1, MAX_BINDS // len(columns))
    one = f"({', '.join(mark for _ in columns)})"
    head = f"INSERT INTO {table.name} ({_quoted(conn, columns)}) VALUES "  # noqa: S608 - names come from our own tables
    tail = f" ON CONFLICT ({_quoted(conn, conflict)}) DO NOTHING RETURNING {_quoted(conn, returning)}"
    converted = _convert(conn, table, columns, rows)
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(converted), per_statement):
        part = converted[start : start + per_statement]
        params = [value for row in part for value in row]
        out.extend(tuple(r) for r in conn.exec_driver_sql(head + ", ".join(one for _ in part) + tail, tuple(params)))
    return out


def _quoted(conn: sa.Connection, columns: Sequence[str]) -> str:
    return ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)


def _convert(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> Sequence[Sequence[Any]]:
    dialect = conn.dialect.name
    converters = [(i, f) for i, c in enumerate(columns) if (f := _converter(table.c[c], dialect)) is not None]
    if not converters:
        return rows
    converted = []
    for row in rows:
        values = list(row)
        for i, convert in converters:
            if values[i] is not None:
                values[i] = convert(values[i])
        converted.append(tuple(values))
    return converted


def _copy(conn: sa.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """PostgreSQL's COPY through psycopg: the fastest way in, checked against constraints like an INSERT."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.IntegrityError as exc:
        # What SQLAlchemy raises for an INSERT: the import retries a chunk that lost a race for a key.
        raise sa.exc.IntegrityError(sql, None, exc) from exc
    finally:
        cursor.close()
