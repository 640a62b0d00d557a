"""The backup file format: a zip holding manifest.json plus one canonical JSON-lines file per table."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import sqlalchemy as sa

from herald.core.errors import BackupVerificationError

FORMAT_NAME = "herald-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
BATCH_ROWS = 1000
_CHUNK = 1 << 20

# Called as hook(label, rows_done, rows_total), e.g. ("backup people", 2000, 51234).
ProgressHook = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TableEntry:
    name: str
    columns: tuple[str, ...]
    rows: int
    sha256: str

    @property
    def member(self) -> str:
        return f"tables/{self.name}.jsonl"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns), "rows": self.rows, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    herald_version: str
    alembic_revision: str | None
    source_engine: str
    created_at: dt.datetime
    tables: tuple[TableEntry, ...]  # in foreign-key order: restoring in this order never breaks a reference
    format_version: int = FORMAT_VERSION

    @property
    def table_counts(self) -> dict[str, int]:
        return {entry.name: entry.rows for entry in self.tables}

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "herald_version": self.herald_version,
            "alembic_revision": self.alembic_revision,
            "source_engine": self.source_engine,
            "created_at": encode_value(self.created_at),
            "tables": [entry.to_dict() for entry in self.tables],
        }
        return json.dumps(body, indent=2, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            body = json.loads(raw)
            if body.get("format") != FORMAT_NAME:
                raise ValueError("not a Herald backup manifest")
            version = int(body["format_version"])
            tables = tuple(
                TableEntry(str(t["name"]), tuple(str(c) for c in t["columns"]), int(t["rows"]), str(t["sha256"]))
                for t in body["tables"]
            )
            manifest = cls(
                herald_version=str(body["herald_version"]),
                alembic_revision=body["alembic_revision"],
                source_engine=str(body["source_engine"]),
                created_at=dt.datetime.fromisoformat(body["created_at"]),
                tables=tables,
                format_version=version,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupVerificationError(f"The backup's manifest is unreadable: {exc}") from exc
        if version > FORMAT_VERSION:
            raise BackupVerificationError(
                f"This backup uses format version {version}; this Herald reads up to {FORMAT_VERSION}. "
                "Restore it with a newer Herald.",
                format_version=version,
            )
        return manifest


def _entry_from_dict(body: dict[str, Any]) -> TableEntry:
    columns = tuple(str(c) for c in body["columns"])
    return TableEntry(str(body["name"]), columns, int(body["rows"]), str(body["sha256"]))


# --- canonical rows -------------------------------------------------------------------------------


def encode_value(value: Any) -> Any:
    """Turn a value read from either engine into the one JSON form both engines agree on."""
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"no canonical form for {type(value).__name__}")


def canonical_line(columns: Sequence[str], values: Sequence[Any]) -> bytes:
    """One row as sorted-key compact JSON plus a newline; the unit that checksums are taken over."""
    row = {name: encode_value(value) for name, value in zip(columns, values, strict=True)}
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def _python_type(column: sa.ColumnElement[Any]) -> type | None:
    col_type = column.type
    if isinstance(col_type, sa.TypeDecorator):
        col_type = col_type.impl_instance
    if isinstance(col_type, sa.JSON):
        return None  # JSON columns take the decoded structure as it is
    try:
        python_type: type = col_type.python_type
    except NotImplementedError:
        return None
    return python_type


_DECODERS: dict[type, Callable[[Any], Any]] = {
    dt.datetime: dt.datetime.fromisoformat,
    dt.date: dt.date.fromisoformat,
    dt.time: dt.time.fromisoformat,
    float: float,
    Decimal: lambda v: Decimal(str(v)),
    bytes: lambda v: base64.b64decode(v, validate=True),
}


def decoder_for(column: sa.ColumnElement[Any]) -> Callable[[Any], Any]:
    """The inverse of encode_value for one column's type; verification catches anything lossy."""
    python_type = _python_type(column)
    decode = _DECODERS.get(python_type) if python_type is not None else None
    if decode is None:
        return lambda value: value
    return lambda value: None if value is None else decode(value)


def _binary_order(column: sa.Column[Any], dialect_name: str) -> sa.ColumnElement[Any]:
    # PostgreSQL sorts text by locale; "C" is byte order, which is what SQLite's BINARY does.
    if dialect_name == "postgresql" and isinstance(column.type, sa.String):
        return column.collate("C")
    return column


def select_in_key_order(table: sa.Table, columns: Sequence[str], dialect_name: str) -> sa.Select[Any]:
    keys = list(table.primary_key.columns) or [table.c[name] for name in columns]
    return sa.select(*(table.c[name] for name in columns)).order_by(*(_binary_order(key, dialect_name) for key in keys))


def iter_canonical_lines(conn: sa.Connection, table: sa.Table, columns: Sequence[str]) -> Iterator[bytes]:
    """Stream a table's rows in primary-key order as canonical lines (server-side cursor on PostgreSQL)."""
    stmt = select_in_key_order(table, columns, conn.dialect.name)
    # Per statement: Connection.execution_options() would switch the whole connection to server-side
    # cursors, and a later INSERT … RETURNING in the same transaction (the restore's audit row) would fail.
    result = conn.execute(stmt, execution_options={"yield_per": BATCH_ROWS})
    for row in result:
        yield canonical_line(columns, row)


class TableDigest:
    """Row count and sha256 over canonical lines, accumulated as they stream past."""

    def __init__(self) -> None:
        self.rows = 0
        self._hash = hashlib.sha256()

    def add(self, line: bytes) -> None:
        self.rows += 1
        self._hash.update(line)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def file_sha256(path: Path) -> tuple[int, str]:
    """Size in bytes and sha256 of a whole file."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


# --- reading an archive ---------------------------------------------------------------------------

_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError)


class BackupArchive:
    """An opened backup file; every read error becomes a BackupVerificationError naming what broke."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path)
        except FileNotFoundError as exc:
            raise BackupVerificationError(f"No backup file at {path}.", path=str(path)) from exc
        except _DAMAGE as exc:
            raise BackupVerificationError(
                f"{path} is not a complete Herald backup (damaged or truncated zip: {exc}).", path=str(path)
            ) from exc
        try:
            raw = self._zip.read(MANIFEST_NAME)
        except _DAMAGE as exc:
            self._zip.close()
            raise BackupVerificationError(f"{path} has no readable manifest.json ({exc}).", path=str(path)) from exc
        self.manifest = Manifest.from_json(raw)

    def __enter__(self) -> BackupArchive:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._zip.close()

    def _open(self, entry: TableEntry) -> IO[bytes]:
        try:
            return self._zip.open(entry.member)
        except _DAMAGE as exc:
            raise self._damaged(entry, f"cannot open {entry.member}: {exc}") from exc

    def _damaged(self, entry: TableEntry, why: str) -> BackupVerificationError:
        return BackupVerificationError(
            f"The backup file is damaged: table {entry.name} {why}.", table=entry.name, stage="file"
        )

    def check_table(self, entry: TableEntry, progress: ProgressHook | None = None) -> None:
        """Hash the table's file and compare it with the manifest, before anything is inserted."""
        digest, rows = hashlib.sha256(), 0
        try:
            with self._open(entry) as member:
                while chunk := member.read(_CHUNK):
                    digest.update(chunk)
                    rows += chunk.count(b"\n")
                    if progress:
                        progress(f"check {entry.name}", min(rows, entry.rows), entry.rows)
        except _DAMAGE as exc:
            raise self._damaged(entry, f"cannot be read ({exc})") from exc
        if digest.hexdigest() != entry.sha256 or rows != entry.rows:
            raise self._damaged(
                entry,
                f"does not match its checksum in the manifest ({rows} rows, manifest says {entry.rows})",
            )

    def check_integrity(self, progress: ProgressHook | None = None) -> None:
        for entry in self.manifest.tables:
            self.check_table(entry, progress)

    def rows(self, entry: TableEntry) -> Iterator[dict[str, Any]]:
        """The table's rows as decoded JSON objects, streamed."""
        try:
            with self._open(entry) as member:
                for number, line in enumerate(member, start=1):
                    yield self._parse(entry, number, line)
        except _DAMAGE as exc:
            raise self._damaged(entry, f"cannot be read ({exc})") from exc

    def _parse(self, entry: TableEntry, number: int, line: bytes) -> dict[str, Any]:
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise self._damaged(entry, f"has an unreadable row {number}") from exc
        if not isinstance(row, dict) or set(row) != set(entry.columns):
            raise self._damaged(entry, f"row {number} does not have the manifest's columns")
        return row
