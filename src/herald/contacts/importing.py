"""Contact imports: stream a file, validate rows (in parallel), resolve in chunks, report and undo."""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
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
from herald.contacts.matching import Incoming
from herald.contacts.records import REJECT, WARNING, RowIssue, expand, validate_chunk, validate_chunk_compact
from herald.contacts.resolve import Resolver
from herald.core.actor import SYSTEM, Actor
from herald.core.clock import Clock
from herald.core.errors import HeraldError, InvalidInputError, LeaseLostError, NotFoundError
from herald.db.contacts_tables import batch_changes, import_batches, import_rejects
from herald.db.engine import read_connection
from herald.db.runtime import instance_secret
from herald.db.unit_of_work import UnitOfWork, unit_of_work

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
    "warned",  # imported rows that had an invalid identifier set aside (also counted as created, updated, …)
    "suppressed",
)
Progress = Callable[[int, int], None]  # (processed rows, estimated total rows)
# Called inside each chunk's transaction with (processed rows, estimated total rows): a durable job records its
# progress there and raises LeaseLostError when another worker took it over, which rolls the chunk back.
Checkpoint = Callable[[sa.Connection, int, int], None]


@dataclass
class ImportReport:
    batch_id: int | None
    file_name: str
    format: str
    dry_run: bool
    status: str
    total_rows: int
    counts: dict[str, int]
    rejects: list[RowIssue] = field(default_factory=list)
    rejects_file: Path | None = None  # rejected rows and warnings, one line each (kind column)
    warnings: list[RowIssue] = field(default_factory=list)
    encoding: str | None = None
    encoding_guessed: bool = False

    @property
    def encoding_label(self) -> str:
        return encoding_label(self.encoding, self.encoding_guessed)

    @property
    def issues(self) -> list[RowIssue]:
        """Rejects and warnings in file order."""
        return sorted([*self.rejects, *self.warnings], key=lambda issue: issue.row_number)


def encoding_label(encoding: str | None, guessed: bool) -> str:
    """How a file was read, as an operator reads it: "cp1252 (guessed)" when nothing in the file said so."""
    if not encoding:
        return "unknown"
    return f"{encoding} (guessed)" if guessed else encoding


def estimate_rows(path: Path) -> int:
    """Newlines minus the header: exact unless cells hold line breaks; only drives progress bars."""
    count = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            count += block.count(b"\n")
    return max(count - 1, 1)


def create_batch(uow: UnitOfWork, file_name: str, fmt: str, region: str, status: str = "pending") -> int:
    """The batch row an import runs into, audited as import.started with whoever started it."""
    batch_id = _insert_batch(uow.conn, uow.now, file_name, fmt, region, status)
    details = {"file": file_name, "format": fmt, "region": region}
    uow.audit("import.started", target=f"import {batch_id}", details=details)
    return batch_id


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
    encoding = "utf-8-sig"
    encoding_guessed = False

    def __init__(self, path: Path) -> None:
        self._fh = path.open(newline="", encoding="utf-8-sig")
        self._reader = csv.reader(self._fh)
        try:
            self.headers = next(self._reader)
        except BaseException:
            self._fh.close()
            raise

    def __iter__(self) -> Iterator[ContactRow]:
        return read_herald_export(self._reader, self.headers)

    def __enter__(self) -> _HeraldExportSource:
        return self

    def __exit__(self, *_: object) -> None:
        self._fh.close()


def open_any(path: Path, fmt: str) -> Any:
    """Open a contact file of any layout; a file that cannot be read at all raises InvalidInputError."""
    try:
        if fmt in ("auto", "herald"):
            with path.open("rb") as fh:
                if EXPORT_MARKER.encode() in fh.readline()[:200]:
                    return _HeraldExportSource(path)
        return open_source(path, fmt)
    except (UnicodeError, csv.Error) as exc:
        # Our own export is strict UTF-8, and a header cell can exceed the csv field limit.
        raise InvalidInputError(f"The file cannot be read as CSV text: {exc}.", field="file") from exc


def _chunks(rows: Iterable[ContactRow], size: int) -> Iterator[list[ContactRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def validated_chunks(
    rows: Iterable[ContactRow], region: str, workers: int, pool: Executor | None
) -> Iterator[list[Incoming | RowIssue]]:
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
    issues: list[RowIssue]


class _Importer:
    """One run of one file into one batch (or a dry run that rolls everything back)."""

    def __init__(self, engine: sa.Engine, clock: Clock, *, dry_run: bool, actor: str) -> None:
        self.engine, self.clock, self.dry_run, self.actor = engine, clock, dry_run, actor
        self.counts: Counter[str] = Counter()
        self.journaled: set[int] = set()
        self.rejects: list[RowIssue] = []
        self.warnings: list[RowIssue] = []
        self.secret = instance_secret(engine, "tombstone")

    def resolve_chunk(
        self, conn: sa.Connection, batch_id: int, fmt: str, file_name: str, items: list[Incoming | RowIssue]
    ) -> _Chunk:
        """Write one chunk in the caller's transaction; its totals count only once accept_chunk() takes them."""
        records = [i for i in items if isinstance(i, Incoming)]
        issues = [i for i in items if isinstance(i, RowIssue)]
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
        if issues:
            conn.execute(
                import_rejects.insert(),
                [
                    {
                        "batch_id": batch_id,
                        "row_number": r.row_number,
                        "kind": r.kind,
                        "reason": r.reason,
                        "field": r.field,
                        "message": r.message,
                        "raw": r.raw,
                    }
                    for r in issues
                ],
            )
        rejected = sum(1 for r in issues if r.kind == REJECT)
        warned = len({r.row_number for r in issues if r.kind == WARNING})  # rows, like every other count
        counts = resolver.counts + Counter(rejected=rejected, warned=warned)
        return _Chunk(counts, resolver.journaled, issues)

    def accept_chunk(self, chunk: _Chunk) -> None:
        # Only a committed chunk counts; a retried one starts again from the accepted totals.
        self.counts.update(chunk.counts)
        self.journaled = chunk.journaled
        for issue in chunk.issues:
            (self.warnings if issue.kind == WARNING else self.rejects).append(issue)

    def fill(self, report: ImportReport, encoding: str, guessed: bool) -> ImportReport:
        report.rejects, report.warnings = self.rejects, self.warnings
        report.encoding, report.encoding_guessed = encoding, guessed
        return report


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
    checkpoint: Checkpoint | None = None
    start: int = 0  # rows an interrupted run already committed; a resumed run skips them

    def chunks(self) -> Iterator[list[Incoming | RowIssue]]:
        rows = islice(self.source, self.start, None) if self.start else self.source
        return validated_chunks(rows, self.region, self.workers, self.pool)

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
    actor: Actor = SYSTEM,
    checkpoint: Checkpoint | None = None,
    resume: bool = False,
) -> ImportReport:
    """Import one file. Bad rows are rejected with reasons, bad values beside good ones are warnings;
    any failure, also a file that cannot be read at all, ends the batch as failed and rolls it back.

    With `resume`, an existing batch that an interrupted run left half done continues after the rows it
    already committed (each chunk commits its rows and the batch's progress together, so none is lost or
    written twice). A LeaseLostError from `checkpoint` leaves the batch to whoever took it over."""
    name = file_name or path.name
    importer = _Importer(engine, clock, dry_run=dry_run, actor=actor.label)
    start = _restore(engine, importer, batch_id) if resume and batch_id is not None and not dry_run else 0
    try:
        total = estimate_rows(path)
        source = open_any(path, fmt)
    except Exception as exc:
        # An empty, binary or undecodable file, or one without an identifier column: the batch says
        # so itself instead of staying pending for ever.
        if batch_id is not None and not dry_run:
            fail_batch(engine, clock, batch_id, exc)
        raise
    with source:
        layout, encoding, guessed = source.format, source.encoding, source.encoding_guessed
        pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
        run = _Pass(source, name, layout, default_region.upper(), workers, pool, total, progress, checkpoint, start)
        try:
            if dry_run:
                processed = _dry_run(engine, clock, importer, run)
                report = ImportReport(None, name, layout, True, "dry_run", processed, _counts(importer.counts))
                return importer.fill(report, encoding, guessed)
            if batch_id is None:
                with unit_of_work(engine, clock, actor) as uow:
                    batch_id = create_batch(uow, name, layout, run.region, status="running")
            _set_batch(
                engine,
                batch_id,
                status="running",
                format=layout,
                total_rows=total,
                encoding=encoding,
                encoding_guessed=guessed,
            )
            processed = _commit_run(engine, importer, batch_id, run)
        except LeaseLostError:
            raise  # another worker runs this batch now: failing it would undo its work
        except Exception as exc:
            if batch_id is not None and not dry_run:
                fail_batch(engine, clock, batch_id, exc)
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
    report = importer.fill(ImportReport(batch_id, name, layout, False, "done", processed, counts), encoding, guessed)
    if rejects_dir and report.issues:
        report.rejects_file = write_rejects(report.issues, rejects_dir, batch_id)
    return report


def link_job(conn: sa.Connection, batch_id: int, job_id: int) -> None:
    """Record which durable job runs this batch, in the transaction that queues the job."""
    conn.execute(import_batches.update().where(import_batches.c.id == batch_id).values(job_id=job_id))


def _dry_run(engine: sa.Engine, clock: Clock, importer: _Importer, run: _Pass) -> int:
    processed = 0
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            batch_id = _insert_batch(conn, clock.now(), run.name, run.layout, run.region, "dry_run")
            for items in run.chunks():
                importer.accept_chunk(importer.resolve_chunk(conn, batch_id, run.layout, run.name, items))
                processed += _rows_in(items)
                run.advanced(processed)
        finally:
            trans.rollback()  # a dry run changes nothing
    return processed


def _restore(engine: sa.Engine, importer: _Importer, batch_id: int) -> int:
    """Pick up an interrupted batch: its committed totals, journal and issues; return the rows already done."""
    with read_connection(engine) as conn:
        batch = conn.execute(
            sa.select(import_batches.c.processed_rows, import_batches.c.counts).where(import_batches.c.id == batch_id)
        ).first()
        if batch is None or not batch.processed_rows:
            return 0
        journaled = conn.scalars(sa.select(batch_changes.c.person_id).where(batch_changes.c.batch_id == batch_id))
        importer.journaled = set(journaled)
    importer.counts = Counter({key: int(value) for key, value in (batch.counts or {}).items()})
    for issue in batch_issues(engine, batch_id):
        (importer.warnings if issue.kind == WARNING else importer.rejects).append(issue)
    log.warning("import batch %s resumes after row %d", batch_id, batch.processed_rows)
    return int(batch.processed_rows)


def _commit_run(engine: sa.Engine, importer: _Importer, batch_id: int, run: _Pass) -> int:
    processed = run.start
    for items in run.chunks():
        for attempt in range(3):
            try:
                with engine.begin() as conn:
                    chunk = importer.resolve_chunk(conn, batch_id, run.layout, run.name, items)
                    processed_now = processed + _rows_in(items)
                    conn.execute(
                        import_batches.update()
                        .where(import_batches.c.id == batch_id)
                        .values(
                            processed_rows=processed_now,
                            total_rows=max(run.total, processed_now),
                            counts=_counts(importer.counts + chunk.counts),
                        )
                    )
                    if run.checkpoint is not None:
                        run.checkpoint(conn, processed_now, max(run.total, processed_now))
                break
            except IntegrityError:
                # Another writer created one of these identifiers between our lookup and insert
                # (PostgreSQL, concurrent imports): look again and redo the chunk.
                if attempt == 2:
                    raise
        importer.accept_chunk(chunk)
        processed += _rows_in(items)
        run.advanced(processed)
    return processed


def _rows_in(items: list[Incoming | RowIssue]) -> int:
    """Each row gives one record or one reject; its warnings ride along and are not rows."""
    return sum(1 for item in items if not (isinstance(item, RowIssue) and item.kind == WARNING))


def _counts(counter: Counter[str]) -> dict[str, int]:
    return {key: int(counter.get(key, 0)) for key in (*COUNT_KEYS, "opt_out_kept")}


def _set_batch(engine: sa.Engine, batch_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(import_batches.update().where(import_batches.c.id == batch_id).values(**values))


def fail_batch(engine: sa.Engine, clock: Clock, batch_id: int, exc: Exception) -> None:
    """End a batch as failed with `exc` as its error, and roll back whatever it wrote."""
    from herald.contacts.undo import undo_import

    code, message = failure_of(exc)
    _set_batch(engine, batch_id, error_code=code, error=message[:2000], finished_at=clock.now())
    try:
        with unit_of_work(engine, clock, SYSTEM) as uow:
            undo_import(uow, batch_id, final_status="failed")
    except HeraldError as refused:
        # Still failed, never pending or running: say why what it wrote is still there.
        note = f"{message} (not rolled back: {refused.message})"
        _set_batch(engine, batch_id, status="failed", error=note[:2000])


def failure_of(exc: BaseException) -> tuple[str, str]:
    """The (code, message) a failed batch reports: a HeraldError's own, or the unexpected error's."""
    if isinstance(exc, HeraldError):
        return exc.code, exc.message
    return "import_failed", f"{type(exc).__name__}: {exc}"


ISSUE_COLUMNS = ["row", "kind", "reason", "field", "message"]


def write_rejects(issues: Iterable[RowIssue], directory: Path | None, batch_id: int | str | None) -> Path:
    """One CSV line per rejected row or warning, in file order, with the row's own cells after the fixed columns."""
    directory = directory or Path()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"import-{batch_id}-rejects.csv"
    ordered = sorted(issues, key=lambda issue: issue.row_number)
    headers: list[str] = []
    for issue in ordered:
        headers.extend(h for h in issue.raw if h not in headers)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*ISSUE_COLUMNS, *headers])
        for r in ordered:
            writer.writerow(
                [
                    r.row_number,
                    r.kind,
                    r.reason,
                    r.field or "",
                    neutralise(r.message),
                    *(neutralise(r.raw.get(h, "")) for h in headers),
                ]
            )
    return path


def get_batch(engine: sa.Engine, batch_id: int) -> dict[str, Any]:
    """A batch as the API and the pages show it; a failed one carries `error: {code, message}`."""
    with read_connection(engine) as conn:
        row = conn.execute(sa.select(import_batches).where(import_batches.c.id == batch_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"No import batch with id {batch_id}.", id=batch_id)
    batch = dict(row)
    code = batch.pop("error_code")
    batch["error"] = {"code": code or "import_failed", "message": batch["error"]} if batch["error"] else None
    batch["encoding_guessed"] = bool(batch["encoding_guessed"])
    total = max(batch["total_rows"] or 0, 1)
    batch["percent"] = (
        100 if batch["status"] in ("done", "undone") else min(99, int(100 * batch["processed_rows"] / total))
    )
    return batch


def batch_issues(
    engine: sa.Engine, batch_id: int, *, kind: str | None = None, limit: int | None = None
) -> list[RowIssue]:
    """A batch's rejected rows and warnings (or one kind of them) in file order."""
    query = sa.select(import_rejects).where(import_rejects.c.batch_id == batch_id)
    if kind is not None:
        query = query.where(import_rejects.c.kind == kind)
    query = query.order_by(import_rejects.c.row_number, import_rejects.c.id).limit(limit)
    with read_connection(engine) as conn:
        rows = conn.execute(query).mappings()
        return [RowIssue(r["row_number"], r["reason"], r["field"], r["message"], r["raw"], r["kind"]) for r in rows]


def default_workers(configured: int) -> int:
    return configured or (os.cpu_count() or 1)


def list_batches(engine: sa.Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent import batches, newest first (for the imports page)."""
    with read_connection(engine) as conn:
        rows = conn.execute(sa.select(import_batches).order_by(import_batches.c.id.desc()).limit(limit)).mappings()
        return [dict(row) for row in rows]
