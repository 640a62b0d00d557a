"""Contact imports: stream a file, validate rows (in parallel), resolve in chunks, report and undo."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from herald.contacts.export import EXPORT_MARKER, neutralise, read_herald_export
from herald.contacts.importers import ContactRow, open_source
from herald.contacts.records import Reject, expand, validate_chunk, validate_chunk_compact
from herald.contacts.resolve import Incoming, Resolver
from herald.core.clock import Clock
from herald.core.errors import NotFoundError
from herald.db.engine import read_connection
from herald.db.runtime import instance_secret
from herald.db.tables import import_batches, import_rejects

CHUNK_ROWS = 2000
log = logging.getLogger(__name__)
COUNT_KEYS = (
    "created",
    "updated",
    "unchanged",
    "deduplicated",
    "merged",
    "suggested",
    "rejected",
    "suppressed",
)
Progress = Callable[[int, int], None]  # (processed rows, estimated total rows)


@dataclass
class ImportReport:
    batch_id: int | None
    file_name: str
    format: str
    dry_run: bool
    status: str
    total_rows: int
    counts: dict[str, int]
    rejects: list[Reject] = field(default_factory=list)
    rejects_file: Path | None = None


def estimate_rows(path: Path) -> int:
    """Newlines minus the header: exact unless cells hold line breaks; only drives progress bars."""
    count = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            count += block.count(b"\n")
    return max(count - 1, 1)


def create_batch(
    engine: sa.Engine, clock: Clock, file_name: str, fmt: str, region: str, status: str = "pending"
) -> int:
    with engine.begin() as conn:
        return _insert_batch(conn, clock.now(), file_name, fmt, region, status)


def _insert_batch(conn: sa.Connection, now: dt.datetime, file_name: str, fmt: str, region: str, status: str) -> int:
    batch_id = conn.scalar(
        import_batches.insert()
        .values(
            file_name=file_name,
            format=fmt,
            status=status,
            default_region=region,
            counts=dict.fromkeys(COUNT_KEYS, 0),
            created_at=now,
        )
        .returning(import_batches.c.id)
    )
    assert batch_id is not None
    return int(batch_id)


class _HeraldExportSource:
    """Our own export, read back losslessly; everything else goes through the layout readers."""

    format = "herald"

    def __init__(self, path: Path) -> None:
        self._fh = path.open(newline="", encoding="utf-8-sig")
        self._reader = csv.reader(self._fh)
        self.headers = next(self._reader)

    def __iter__(self) -> Iterator[ContactRow]:
        return read_herald_export(self._reader, self.headers)

    def __enter__(self) -> _HeraldExportSource:
        return self

    def __exit__(self, *_: object) -> None:
        self._fh.close()


def open_any(path: Path, fmt: str) -> Any:
    if fmt in ("auto", "herald"):
        with path.open("rb") as fh:
            if EXPORT_MARKER.encode() in fh.readline()[:200]:
                return _HeraldExportSource(path)
    return open_source(path, fmt)


def _chunks(rows: Iterable[ContactRow], size: int) -> Iterator[list[ContactRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def validated_chunks(
    rows: Iterable[ContactRow], region: str, workers: int, pool: Executor | None
) -> Iterator[list[Incoming | Reject]]:
    chunks = _chunks(rows, CHUNK_ROWS)
    if pool is None:
        for chunk in chunks:
            yield validate_chunk(chunk, region)
        return
    # Keep a bounded window of chunks in flight: parallel, ordered, and memory stays flat.
    window: list[tuple[list[ContactRow], Any]] = []
    for chunk in chunks:
        window.append((chunk, pool.submit(validate_chunk_compact, chunk, region)))
        if len(window) >= workers * 3:
            rows, future = window.pop(0)
            yield expand(rows, future.result())
    for rows, future in window:
        yield expand(rows, future.result())


@dataclass(frozen=True)
class _Chunk:
    counts: Counter[str]
    journaled: set[int]
    rejects: list[Reject]


class _Importer:
    """One run of one file into one batch (or a dry run that rolls everything back)."""

    def __init__(self, engine: sa.Engine, clock: Clock, *, dry_run: bool, actor: str) -> None:
        self.engine, self.clock, self.dry_run, self.actor = engine, clock, dry_run, actor
        self.counts: Counter[str] = Counter()
        self.journaled: set[int] = set()
        self.rejects: list[Reject] = []
        self.secret = instance_secret(engine, "tombstone")

    def resolve_chunk(
        self, conn: sa.Connection, batch_id: int, fmt: str, file_name: str, items: list[Incoming | Reject]
    ) -> _Chunk:
        """Write one chunk in the caller's transaction; its totals count only once accept_chunk() takes them."""
        records = [i for i in items if isinstance(i, Incoming)]
        rejects = [i for i in items if isinstance(i, Reject)]
        resolver = Resolver(
            conn,
            self.clock.now(),
            secret=self.secret,
            source=f"import:{fmt}",
            actor=self.actor,
            batch_id=batch_id,
            file_name=file_name,
            journaled=set(self.journaled),
        )
        resolver.resolve(records)
        if rejects:
            conn.execute(
                import_rejects.insert(),
                [
                    {
                        "batch_id": batch_id,
                        "row_number": r.row_number,
                        "reason": r.reason,
                        "field": r.field,
                        "message": r.message,
                        "raw": r.raw,
                    }
                    for r in rejects
                ],
            )
        return _Chunk(resolver.counts + Counter(rejected=len(rejects)), resolver.journaled, rejects)

    def accept_chunk(self, chunk: _Chunk) -> None:
        # Only a committed chunk counts; a retried one starts again from the accepted totals.
        self.counts.update(chunk.counts)
        self.journaled = chunk.journaled
        self.rejects.extend(chunk.rejects)


@dataclass
class _Pass:
    """One pass over one file: where validated chunks come from and where progress goes."""

    source: Any
    name: str
    layout: str
    region: str
    workers: int
    pool: Executor | None
    total: int
    progress: Progress | None

    def chunks(self) -> Iterator[list[Incoming | Reject]]:
        return validated_chunks(self.source, self.region, self.workers, self.pool)

    def advanced(self, processed: int) -> None:
        if self.progress:
            self.progress(processed, max(self.total, processed))


def run_import(
    engine: sa.Engine,
    clock: Clock,
    path: Path,
    *,
    fmt: str = "auto",
    default_region: str = "US",
    dry_run: bool = False,
    batch_id: int | None = None,
    file_name: str | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    rejects_dir: Path | None = None,
    actor: str = "import",
) -> ImportReport:
    """Import one file. Bad rows are rejected with reasons; a failure rolls the whole batch back."""
    name = file_name or path.name
    importer = _Importer(engine, clock, dry_run=dry_run, actor=actor)
    total = estimate_rows(path)
    with open_any(path, fmt) as source:
        layout = source.format
        pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        run = _Pass(source, name, layout, default_region.upper(), workers, pool, total, progress)
        try:
            if dry_run:
                processed = _dry_run(engine, clock, importer, run)
                counts = _counts(importer.counts)
                return ImportReport(None, name, layout, True, "dry_run", processed, counts, importer.rejects)
            if batch_id is None:
                batch_id = create_batch(engine, clock, name, layout, run.region, status="running")
            else:
                _set_batch(engine, batch_id, status="running", format=layout, total_rows=total)
            processed = _commit_run(engine, importer, batch_id, run)
        except Exception as exc:
            if batch_id is not None and not dry_run:
                _fail_and_roll_back(engine, clock, batch_id, exc)
            raise
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    counts = _counts(importer.counts)
    _set_batch(
        engine,
        batch_id,
        status="done",
        total_rows=processed,
        processed_rows=processed,
        counts=counts,
        finished_at=clock.now(),
    )
    rejects_file = write_rejects(importer.rejects, rejects_dir, batch_id) if rejects_dir and importer.rejects else None
    return ImportReport(batch_id, name, layout, False, "done", processed, counts, importer.rejects, rejects_file)


def start_import(
    engine: sa.Engine,
    clock: Clock,
    path: Path,
    *,
    batch_id: int,
    fmt: str,
    default_region: str,
    file_name: str,
    rejects_dir: Path,
    actor: str,
) -> threading.Thread:
    """Run an already created batch beside the caller (API upload, web upload); progress is on its row."""

    def work() -> None:
        try:
            run_import(
                engine,
                clock,
                path,
                fmt=fmt,
                default_region=default_region,
                batch_id=batch_id,
                file_name=file_name,
                rejects_dir=rejects_dir,
                actor=actor,
            )
        except Exception:
            # run_import already rolled the batch back and stored the error on its row.
            log.exception("import batch %s failed", batch_id)

    thread = threading.Thread(target=work, daemon=True, name=f"import-{batch_id}")
    thread.start()
    return thread


def _dry_run(engine: sa.Engine, clock: Clock, importer: _Importer, run: _Pass) -> int:
    processed = 0
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            batch_id = _insert_batch(conn, clock.now(), run.name, run.layout, run.region, "dry_run")
            for items in run.chunks():
                importer.accept_chunk(importer.resolve_chunk(conn, batch_id, run.layout, run.name, items))
                processed += len(items)
                run.advanced(processed)
        finally:
            trans.rollback()  # a dry run changes nothing
    return processed


def _commit_run(engine: sa.Engine, importer: _Importer, batch_id: int, run: _Pass) -> int:
    processed = 0
    for items in run.chunks():
        for attempt in range(3):
            try:
                with engine.begin() as conn:
                    chunk = importer.resolve_chunk(conn, batch_id, run.layout, run.name, items)
                    processed_now = processed + len(items)
                    conn.execute(
                        import_batches.update()
                        .where(import_batches.c.id == batch_id)
                        .values(
                            processed_rows=processed_now,
                            total_rows=max(run.total, processed_now),
                            counts=_counts(importer.counts + chunk.counts),
                        )
                    )
                break
            except IntegrityError:
                # Another writer created one of these identifiers between our lookup and insert
                # (PostgreSQL, concurrent imports): look again and redo the chunk.
                if attempt == 2:
                    raise
        importer.accept_chunk(chunk)
        processed += len(items)
        run.advanced(processed)
    return processed


def _counts(counter: Counter[str]) -> dict[str, int]:
    return {key: int(counter.get(key, 0)) for key in (*COUNT_KEYS, "opt_out_kept")}


def _set_batch(engine: sa.Engine, batch_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(import_batches.update().where(import_batches.c.id == batch_id).values(**values))


def _fail_and_roll_back(engine: sa.Engine, clock: Clock, batch_id: int, exc: Exception) -> None:
    from herald.contacts.undo import undo_import

    undo_import(engine, clock, batch_id, actor="import-failure", final_status="failed")
    _set_batch(engine, batch_id, error=f"{type(exc).__name__}: {exc}"[:2000], finished_at=clock.now())


def write_rejects(rejects: list[Reject], directory: Path | None, batch_id: int | str | None) -> Path:
    directory = directory or Path()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"import-{batch_id}-rejects.csv"
    headers: list[str] = []
    for reject in rejects:
        headers.extend(h for h in reject.raw if h not in headers)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "reason", "field", "message", *headers])
        for r in rejects:
            writer.writerow(
                [
                    r.row_number,
                    r.reason,
                    r.field or "",
                    neutralise(r.message),
                    *(neutralise(r.raw.get(h, "")) for h in headers),
                ]
            )
    return path


def get_batch(engine: sa.Engine, batch_id: int) -> dict[str, Any]:
    with read_connection(engine) as conn:
        row = conn.execute(sa.select(import_batches).where(import_batches.c.id == batch_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"No import batch with id {batch_id}.", id=batch_id)
    batch = dict(row)
    total = max(batch["total_rows"] or 0, 1)
    batch["percent"] = (
        100 if batch["status"] in ("done", "undone") else min(99, int(100 * batch["processed_rows"] / total))
    )
    return batch


def batch_rejects(engine: sa.Engine, batch_id: int) -> list[Reject]:
    with read_connection(engine) as conn:
        rows = conn.execute(
            sa.select(import_rejects).where(import_rejects.c.batch_id == batch_id).order_by(import_rejects.c.row_number)
        ).mappings()
        return [Reject(r["row_number"], r["reason"], r["field"], r["message"], r["raw"]) for r in rows]


def default_workers(configured: int) -> int:
    return configured or (os.cpu_count() or 1)


def list_batches(engine: sa.Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent import batches, newest first (for the imports page)."""
    with read_connection(engine) as conn:
        rows = conn.execute(sa.select(import_batches).order_by(import_batches.c.id.desc()).limit(limit)).mappings()
        return [dict(row) for row in rows]
