"""Write a consistent backup of every table, verify it by restoring it, and record it in `backups`."""

from __future__ import annotations

import datetime as dt
import os
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy.pool import NullPool

from herald import __version__
from herald.backup.format import (
    MANIFEST_NAME,
    Manifest,
    ProgressHook,
    TableDigest,
    TableEntry,
    file_sha256,
    iter_canonical_lines,
)
from herald.backup.restore import verify_backup_file
from herald.core.actor import Actor
from herald.core.clock import Clock
from herald.db.backup_tables import backups
from herald.db.engine import is_sqlite
from herald.db.runtime import Runtime
from herald.db.schema import metadata
from herald.db.unit_of_work import UnitOfWork, unit_of_work

_PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class WrittenBackup:
    path: Path
    manifest: Manifest
    size_bytes: int
    sha256: str


# --- the snapshot ---------------------------------------------------------------------------------


def _deferred_sqlite_engine(engine: sa.Engine) -> sa.Engine:
    # engine.py begins every transaction with BEGIN IMMEDIATE, which would hold the write lock for
    # the whole backup and make writers time out on a large database. A plain deferred BEGIN in WAL
    # mode gives one read snapshot for all tables while writers carry on.
    url = engine.url.render_as_string(hide_password=False)
    snap = sa.create_engine(url, poolclass=NullPool, connect_args={"timeout": 30, "isolation_level": None})
    event.listen(snap, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    return snap


@contextmanager
def snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection inside one read transaction: every table is read as of the same instant."""
    if is_sqlite(engine) and engine.url.database not in (None, "", ":memory:"):
        snap = _deferred_sqlite_engine(engine)
        try:
            with snap.connect() as conn, conn.begin():
                yield conn
        finally:
            snap.dispose()
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn
    else:
        with engine.begin() as conn:
            yield conn


# --- writing the file -----------------------------------------------------------------------------


def _member(name: str, created_at: dt.datetime) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=created_at.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _dump_table(
    conn: sa.Connection,
    zf: zipfile.ZipFile,
    table: sa.Table,
    created_at: dt.datetime,
    progress: ProgressHook | None,
) -> TableEntry:
    columns = tuple(column.name for column in table.columns)
    total = conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0
    digest = TableDigest()
    with zf.open(_member(f"tables/{table.name}.jsonl", created_at), "w", force_zip64=True) as member:
        for line in iter_canonical_lines(conn, table, columns):
            member.write(line)
            digest.add(line)
            if progress and digest.rows % _PROGRESS_EVERY == 0:
                progress(f"backup {table.name}", digest.rows, total)
    if progress:
        progress(f"backup {table.name}", digest.rows, digest.rows)
    return TableEntry(table.name, columns, digest.rows, digest.sha256)


def _dump(conn: sa.Connection, zf: zipfile.ZipFile, clock: Clock, progress: ProgressHook | None) -> Manifest:
    revision = MigrationContext.configure(conn).get_current_revision()
    created_at = clock.now()
    # A derived table (info["derived"]: kept by triggers from another table) is left out: restoring its
    # source rebuilds it, and its rows in the file would then collide with the rebuilt ones.
    tables = [table for table in metadata.sorted_tables if "derived" not in table.info]
    entries = tuple(_dump_table(conn, zf, table, created_at, progress) for table in tables)
    manifest = Manifest(
        herald_version=__version__,
        alembic_revision=revision,
        source_engine=conn.dialect.name,
        created_at=created_at,
        tables=entries,
    )
    zf.writestr(_member(MANIFEST_NAME, created_at), manifest.to_json())
    return manifest


def _fsync_path(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_backup(engine: sa.Engine, path: Path, clock: Clock, progress: ProgressHook | None = None) -> WrittenBackup:
    """Write the backup to a temp file, fsync, then rename: a crash never leaves a half file at PATH."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with snapshot(engine) as conn, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            manifest = _dump(conn, zf, clock, progress)
        _fsync_path(tmp)
        tmp.replace(path)
        _fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    size, sha256 = file_sha256(path)
    return WrittenBackup(path=path, manifest=manifest, size_bytes=size, sha256=sha256)


def default_backup_path(directory: Path, when: dt.datetime, kind: str) -> Path:
    """A timestamped name in DIRECTORY that no earlier backup has taken."""
    stem = f"herald-{when.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{kind}"
    path, n = directory / f"{stem}.zip", 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}.zip"
    return path


# --- recording and listing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: str  # verified | failed
    error: str | None
    verified_at: dt.datetime | None


def record_backup(
    uow: UnitOfWork,
    *,
    path: Path,
    kind: str,
    created_at: dt.datetime,
    written: WrittenBackup | None,
    outcome: Outcome,
) -> dict[str, Any]:
    """Insert the `backups` row, audited as backup.created; done after the snapshot so the row never
    appears in its own backup (and the write transaction never spans the long dump)."""
    values = {
        "path": str(path),
        "kind": kind,
        "status": outcome.status,
        "size_bytes": written.size_bytes if written else 0,
        "sha256": written.sha256 if written else None,
        "table_counts": written.manifest.table_counts if written else {},
        "error": outcome.error,
        "created_at": created_at,
        "verified_at": outcome.verified_at,
    }
    row = dict(uow.conn.execute(backups.insert().values(**values).returning(*backups.c)).mappings().one())
    uow.audit(
        "backup.created",
        target=path.name,
        target_id=row["id"],
        details={"kind": kind, "status": row["status"], "size_bytes": row["size_bytes"]},
    )
    return row


def verify_written(written: WrittenBackup, clock: Clock, progress: ProgressHook | None = None) -> Outcome:
    """Restore the file into a scratch SQLite database; any failure means the backup is not verified."""
    try:
        result = verify_backup_file(written.path, progress)
    except Exception as exc:  # any failure at all means "not restorable"; record why
        return Outcome("failed", f"{type(exc).__name__}: {exc}", None)
    if result.table_counts != written.manifest.table_counts:
        return Outcome("failed", "restored row counts differ from the manifest", None)
    return Outcome("verified", None, clock.now())


def take_backup(
    runtime: Runtime, actor: Actor, *, kind: str, out: Path | None = None, progress: ProgressHook | None = None
) -> dict[str, Any]:
    """Write, verify and record one backup; return its `backups` row (status verified or failed).

    The dump and the verifying restore take minutes on a big database, so they run outside any write
    transaction; only the row and its audit entry are one short unit of work, made by `actor`."""
    created_at = runtime.clock.now()
    path = out or default_backup_path(runtime.settings.resolved_backup_dir, created_at, kind)
    written = write_backup(runtime.engine, path, runtime.clock, progress)
    outcome = verify_written(written, runtime.clock, progress)
    with unit_of_work(runtime.engine, runtime.clock, actor) as uow:
        return record_backup(uow, path=written.path, kind=kind, created_at=created_at, written=written, outcome=outcome)


def list_backups(engine: sa.Engine, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(backups).order_by(backups.c.id.desc()).limit(limit)).mappings()
        return [dict(row) for row in rows]


def last_verified(engine: sa.Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(backups)
                .where(backups.c.status == "verified")
                .order_by(backups.c.created_at.desc(), backups.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None
