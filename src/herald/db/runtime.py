"""The Runtime bundles settings, engine, clock and the process's other parts; built once per process by the
composition root (`herald.root.open_root`) and passed down, in place of module-level caches."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from herald.core.clock import Clock, SystemClock
from herald.core.settings import Settings
from herald.db.engine import create_db_engine, dialect_insert
from herald.db.tables import instance_secrets

T = TypeVar("T")


@dataclass
class Runtime:
    settings: Settings
    engine: sa.Engine
    clock: Clock = field(default_factory=SystemClock)
    # The process's other parts (delivery settings, the provider registry, …), one per type. Slices above the
    # kernel keep their own types here, so the kernel need not import them and nothing is keyed by id(runtime).
    _parts: dict[type[Any], Any] = field(default_factory=dict, repr=False)
    _parts_lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def part(self, kind: type[T], build: Callable[[], T]) -> T:
        """This process's one `kind`: the one the composition root provided, else built now, once, and shared
        by every thread (the API's and the embedded worker's)."""
        with self._parts_lock:
            if kind not in self._parts:
                self._parts[kind] = build()
            return cast(T, self._parts[kind])

    def provide(self, value: object) -> None:
        """Set the part of `value`'s type (the composition root does, before anything is served)."""
        with self._parts_lock:
            self._parts[type(value)] = value

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    # No data_dir here: the SQLite engine creates its file's folder, and whatever else lives in data_dir
    # (maildir, imports, backups) creates its own on first use. With HERALD_DATABASE_URL set, commands
    # must not leave an empty herald-data/ in whatever directory they were run from.
    engine = create_db_engine(settings.resolved_database_url)
    return Runtime(settings=settings, engine=engine, clock=clock or SystemClock())


def instance_secret(db: sa.Engine | sa.Connection, name: str) -> str:
    """A per-installation secret kept in the database, so backups carry it along.

    Given a Connection (a unit of work's), it is read or made in that transaction: a second connection
    would wait on the unit's own write lock under SQLite."""
    if isinstance(db, sa.Connection):
        return _secret_in(db, name)
    engine = db
    with engine.connect() as conn:
        value = conn.scalar(sa.select(instance_secrets.c.value).where(instance_secrets.c.name == name))
    if value is not None:
        return str(value)
    with engine.begin() as conn:
        return _secret_in(conn, name)


def _secret_in(conn: sa.Connection, name: str) -> str:
    # Concurrent first requests may all get here: the first insert wins, everyone reads it back.
    conn.execute(
        dialect_insert(conn, instance_secrets)
        .values(name=name, value=secrets.token_hex(32), created_at=dt.datetime.now(dt.UTC))
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return str(conn.scalar(sa.select(instance_secrets.c.value).where(instance_secrets.c.name == name)))
