"""Restore a backup into an empty database in one transaction, then prove it by recomputing checksums."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from herald.backup.format import (
    BATCH_ROWS,
    BackupArchive,
    ProgressHook,
    TableDigest,
    TableEntry,
    decoder_for,
    iter_canonical_lines,
)
from herald.core.actor import Actor
from herald.core.clock import Clock
from herald.core.errors import BackupVerificationError, ConflictError
from herald.db import migrate
from herald.db.engine import create_db_engine
from herald.db.schema import metadata
from herald.db.unit_of_work import unit_of_work

_ALEMBIC_TABLE = "alembic_version"


@dataclass(frozen=True)
class RestoreResult:
    table_counts: dict[str, int]
    alembic_revision: str | None
    source_engine: str


@dataclass(frozen=True)
class _Plan:
    """One table to restore: its schema object, manifest entry, and FK columns filled in afterwards."""

    table: sa.Table
    entry: TableEntry
    deferred: tuple[str, ...]


# --- planning -------------------------------------------------------------------------------------


def _deferred_columns(table: sa.Table, columns: tuple[str, ...], not_yet: set[str]) -> tuple[str, ...]:
    # A row may point at a row of its own table (people.merged_into_id) that comes later in key
    # order; such columns are inserted as NULL and set once every row exists.
    return tuple(
        fk.parent.name
        for fk in table.foreign_keys
        if fk.parent.name in columns and fk.column.table.name in not_yet and fk.parent.nullable
    )


def _plan(archive: BackupArchive) -> list[_Plan]:
    by_name = {entry.name: entry for entry in archive.manifest.tables}
    unknown = sorted(set(by_name) - set(metadata.tables))
    if unknown:
        raise BackupVerificationError(
            f"The backup has tables this Herald does not know: {', '.join(unknown)}.", tables=unknown
        )
    # Derived tables are rebuilt by their triggers as their source rows arrive (backups leave them out).
    ordered = [t for t in metadata.sorted_tables if t.name in by_name and "derived" not in t.info]
    plans, not_yet = [], set(by_name)
    for table in ordered:
        entry = by_name[table.name]
        missing = [name for name in entry.columns if name not in table.c]
        if missing:
            raise BackupVerificationError(
                f"The backup's table {table.name} has unknown columns: {', '.join(missing)}.",
                table=table.name,
            )
        plans.append(_Plan(table, entry, _deferred_columns(table, entry.columns, not_yet)))
        not_yet.discard(table.name)
    return plans


# --- the target must be empty ---------------------------------------------------------------------


def _tables_with_rows(conn: sa.Connection) -> list[str]:
    names = [n for n in sa.inspect(conn).get_table_names() if n != _ALEMBIC_TABLE]
    return [name for name in names if conn.scalar(sa.select(sa.literal(1)).select_from(sa.table(name)).limit(1))]


def _check_revision_known(engine: sa.Engine, revision: str | None) -> str:
    if revision is None:
        raise BackupVerificationError("The backup records no schema revision; it cannot be restored.")
    try:
        ScriptDirectory.from_config(migrate.alembic_config(engine)).get_revision(revision)
    except CommandError as exc:
        raise BackupVerificationError(
            f"The backup is at schema revision {revision}, which this Herald does not know; "
            "restore it with the Herald version that made it (or newer).",
            revision=revision,
        ) from exc
    return revision


def _prepare_schema(engine: sa.Engine, revision: str) -> None:
    """Migrate a database without tables to the backup's revision; refuse anything not empty."""
    with engine.connect() as conn:
        has_tables = bool(sa.inspect(conn).get_table_names())
        busy = _tables_with_rows(conn) if has_tables else []
    if busy:
        raise ConflictError(
            f"Restore needs an empty database, but these tables have rows: {', '.join(busy)}. Nothing was changed.",
            tables=busy,
        )
    if not has_tables:
        migrate.upgrade(engine, revision)
        return
    current = migrate.current_revision(engine)
    if current != revision:
        raise ConflictError(
            f"The database is at schema revision {current} but the backup is at {revision}. "
            "Restore into a database with no tables (it is migrated to the backup's revision), "
            "then run `herald db upgrade`.",
            current=current,
            backup=revision,
        )


# --- inserting ------------------------------------------------------------------------------------


def _decoded_rows(archive: BackupArchive, plan: _Plan) -> Iterator[dict[str, Any]]:
    decoders = {name: decoder_for(plan.table.c[name]) for name in plan.entry.columns}
    for raw in archive.rows(plan.entry):
        try:
            yield {name: decoders[name](raw[name]) for name in plan.entry.columns}
        except (ValueError, TypeError) as exc:
            raise BackupVerificationError(
                f"The backup's table {plan.table.name} has a value that cannot be read: {exc}.",
                table=plan.table.name,
            ) from exc


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _execute_many(conn: sa.Connection, table: sa.Table, stmt: Any, batch: list[dict[str, Any]]) -> None:
    try:
        conn.execute(stmt, batch)
    except sa.exc.DBAPIError as exc:
        raise BackupVerificationError(
            f"Rows of table {table.name} could not be written: {exc.orig}", table=table.name
        ) from exc


def _insert_table(conn: sa.Connection, archive: BackupArchive, plan: _Plan, progress: ProgressHook | None) -> None:
    done, total = 0, plan.entry.rows
    for batch in _batches(_decoded_rows(archive, plan)):
        for row in batch:
            row.update(dict.fromkeys(plan.deferred))
        _execute_many(conn, plan.table, plan.table.insert(), batch)
        done += len(batch)
        if progress:
            progress(f"restore {plan.table.name}", done, total)
    if progress and not total:
        progress(f"restore {plan.table.name}", 0, 0)


def _fill_deferred(conn: sa.Connection, archive: BackupArchive, plan: _Plan) -> None:
    keys = list(plan.table.primary_key.columns)
    stmt = (
        plan.table.update()
        .where(*(key == sa.bindparam(f"k_{key.name}") for key in keys))
        .values({name: sa.bindparam(f"v_{name}") for name in plan.deferred})
    )

    def pending() -> Iterator[dict[str, Any]]:
        for row in _decoded_rows(archive, plan):
            if any(row[name] is not None for name in plan.deferred):
                yield {f"k_{key.name}": row[key.name] for key in keys} | {
                    f"v_{name}": row[name] for name in plan.deferred
                }

    for batch in _batches(pending()):
        _execute_many(conn, plan.table, stmt, batch)


def _reset_sequences(conn: sa.Connection, plans: list[_Plan]) -> None:
    """On PostgreSQL, move each id sequence past the restored ids, or the next insert collides."""
    if conn.dialect.name != "postgresql":
        return
    for plan in plans:
        column = plan.table.autoincrement_column
        if column is None:
            continue
        next_id = sa.func.coalesce(sa.select(sa.func.max(column)).scalar_subquery(), 0) + 1
        sequence = sa.func.pg_get_serial_sequence(plan.table.name, column.name)
        conn.execute(sa.select(sa.func.setval(sequence, next_id, False)))


# --- verifying ------------------------------------------------------------------------------------


def _verify_table(conn: sa.Connection, plan: _Plan, progress: ProgressHook | None) -> None:
    digest, total = TableDigest(), plan.entry.rows
    for line in iter_canonical_lines(conn, plan.table, plan.entry.columns):
        digest.add(line)
        if progress and digest.rows % BATCH_ROWS == 0:
            progress(f"verify {plan.table.name}", digest.rows, total)
    if progress:
        progress(f"verify {plan.table.name}", digest.rows, total)
    if digest.rows != total or digest.sha256 != plan.entry.sha256:
        raise BackupVerificationError(
            f"Verification failed for table {plan.table.name}: the restored rows do not match the backup "
            f"({digest.rows} rows restored, {total} in the backup). Nothing was restored.",
            table=plan.table.name,
            stage="database",
        )


def _restore_rows(
    conn: sa.Connection, archive: BackupArchive, plans: list[_Plan], progress: ProgressHook | None
) -> None:
    busy = _tables_with_rows(conn)
    if busy:
        raise ConflictError(f"Restore needs an empty database; {', '.join(busy)} gained rows.", tables=busy)
    for plan in plans:
        _insert_table(conn, archive, plan, progress)
    for plan in plans:
        if plan.deferred:
            _fill_deferred(conn, archive, plan)
    _reset_sequences(conn, plans)
    for plan in plans:
        _verify_table(conn, plan, progress)


def restore_backup(
    engine: sa.Engine,
    path: Path,
    progress: ProgressHook | None = None,
    *,
    audit: tuple[Clock, Actor] | None = None,
) -> RestoreResult:
    """Check the file, restore it into an empty database, and verify every table before committing.

    With `audit` (clock, actor) — a real restore, not the scratch one that verifies a backup — the rows
    are restored in a unit of work that also records backup.restored, after the restored audit log."""
    with BackupArchive(path) as archive:
        archive.check_integrity(progress)
        plans = _plan(archive)
        manifest = archive.manifest
        _prepare_schema(engine, _check_revision_known(engine, manifest.alembic_revision))
        if audit is None:
            with engine.begin() as conn:
                _restore_rows(conn, archive, plans, progress)
        else:
            with unit_of_work(engine, *audit) as uow:
                _restore_rows(uow.conn, archive, plans, progress)
                details = {
                    "source_engine": manifest.source_engine,
                    "alembic_revision": manifest.alembic_revision,
                    "rows": sum(manifest.table_counts.values()),
                }
                uow.audit("backup.restored", target=path.name, details=details)
    return RestoreResult(
        table_counts=manifest.table_counts,
        alembic_revision=manifest.alembic_revision,
        source_engine=manifest.source_engine,
    )


def verify_backup_file(path: Path, progress: ProgressHook | None = None) -> RestoreResult:
    """The verified restore: restore PATH into a throwaway SQLite database next to it."""
    with tempfile.TemporaryDirectory(prefix=".herald-verify-", dir=path.resolve().parent) as scratch:
        engine = create_db_engine(f"sqlite:///{Path(scratch) / 'verify.db'}")
        try:
            return restore_backup(engine, path, progress)
        finally:
            engine.dispose()
