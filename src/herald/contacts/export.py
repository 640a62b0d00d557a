"""CSV exports of people (lossless, re-importable) and of their source records; formula cells neutralised."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from herald.consent.ledger import load_events
from herald.consent.policy import CHANNELS, PURPOSES, consent_state
from herald.contacts.importers import ContactRow
from herald.contacts.survivorship import SCALAR_FIELDS
from herald.core.actor import Actor
from herald.core.clock import Clock
from herald.core.errors import InvalidInputError
from herald.db.contacts_tables import identifiers, people, source_records
from herald.db.engine import read_connection
from herald.db.unit_of_work import unit_of_work

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\0")
EXPORT_MARKER = "herald_person_id"
CONSENT_COLUMNS = [f"consent_{c}_{p}" for c in CHANNELS for p in PURPOSES]
PEOPLE_HEADER = [
    EXPORT_MARKER,
    *SCALAR_FIELDS,
    "emails",
    "phones",
    "handles",
    "tags",
    "attributes",
    *CONSENT_COLUMNS,
]
SOURCES_HEADER = ["person_id", "source_file", "source_row", "batch_id", "imported_at", "raw"]
PAGE = 2000


def neutralise(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _pages(conn: sa.Connection) -> Iterator[list[Any]]:
    last = 0
    while True:
        rows = (
            conn.execute(
                sa.select(people)
                .where(people.c.status == "active", people.c.id > last)
                .order_by(people.c.id)
                .limit(PAGE)
            )
            .mappings()
            .all()
        )
        if not rows:
            return
        yield list(rows)
        last = rows[-1]["id"]


def _identifiers(conn: sa.Connection, ids: list[int]) -> dict[int, dict[str, list[str]]]:
    out: dict[int, dict[str, list[str]]] = {pid: {"email": [], "phone": [], "handle": []} for pid in ids}
    query = sa.select(identifiers.c.person_id, identifiers.c.kind, identifiers.c.value).where(
        identifiers.c.person_id.in_(ids)
    )
    for pid, kind, value in conn.execute(query.order_by(identifiers.c.id)):
        out[pid][kind].append(value)
    return out


def export_people(engine: sa.Engine, out: Path, progress: Callable[[int, int], None] | None = None) -> int:
    """One line per active person: identifiers, fields, attributes, tags and consent state."""
    written = 0
    with read_connection(engine) as conn, out.open("w", newline="", encoding="utf-8") as fh:
        total = conn.scalar(sa.select(sa.func.count()).select_from(people).where(people.c.status == "active")) or 0
        writer = csv.writer(fh)
        writer.writerow(PEOPLE_HEADER)
        for page in _pages(conn):
            ids = [row["id"] for row in page]
            idents, events = _identifiers(conn, ids), load_events(conn, ids)
            for row in page:
                consent = [consent_state(events[row["id"]], c, p)[0] for c in CHANNELS for p in PURPOSES]
                cells = [
                    row["id"],
                    *(row[f] for f in SCALAR_FIELDS),
                    json.dumps(idents[row["id"]]["email"], ensure_ascii=False),
                    json.dumps(idents[row["id"]]["phone"], ensure_ascii=False),
                    json.dumps(idents[row["id"]]["handle"], ensure_ascii=False),
                    json.dumps(row["tags"] or [], ensure_ascii=False),
                    json.dumps(row["attributes"] or {}, ensure_ascii=False, sort_keys=True),
                    *consent,
                ]
                writer.writerow([neutralise(c) for c in cells])
            written += len(page)
            if progress:
                progress(written, total)
    return written


def export_sources(engine: sa.Engine, out: Path) -> int:
    """One line per source record: which file and row each person came from."""
    written, last = 0, 0
    with read_connection(engine) as conn, out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(SOURCES_HEADER)
        while True:
            rows = (
                conn.execute(
                    sa.select(source_records)
                    .where(source_records.c.id > last)
                    .order_by(source_records.c.id)
                    .limit(PAGE)
                )
                .mappings()
                .all()
            )
            if not rows:
                return written
            for r in rows:
                cells = [
                    r["person_id"],
                    r["file_name"],
                    r["row_number"],
                    r["batch_id"],
                    r["created_at"].isoformat(),
                    json.dumps(r["raw"], ensure_ascii=False, sort_keys=True),
                ]
                writer.writerow([neutralise(c) for c in cells])
            written += len(rows)
            last = rows[-1]["id"]


def _unquote(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:2] in _FORMULA_START else cell


def read_herald_export(rows: Iterator[list[str]], header: list[str]) -> Iterator[ContactRow]:
    """Read our own export back losslessly (the 'herald' layout)."""
    for number, cells in enumerate(rows, start=2):
        raw = dict(zip(header, cells, strict=False))
        value = {k: _unquote(v) for k, v in raw.items()}
        consent = {}
        for column in CONSENT_COLUMNS:
            state = value.get(column, "unknown")
            if state not in ("", "unknown"):
                _, channel, purpose = column.split("_")
                consent[f"{channel}:{purpose}"] = state
        yield ContactRow(
            row_number=number,
            raw=raw,
            emails=tuple(json.loads(value.get("emails") or "[]")),
            phones=tuple(json.loads(value.get("phones") or "[]")),
            handles=tuple(json.loads(value.get("handles") or "[]")),
            first_name=value.get("first_name") or None,
            last_name=value.get("last_name") or None,
            company=value.get("company") or None,
            country=value.get("country") or None,
            locale=value.get("locale") or None,
            timezone=value.get("timezone") or None,
            tags=tuple(json.loads(value.get("tags") or "[]")),
            attributes=json.loads(value.get("attributes") or "{}"),
            consent=consent,
            consent_at=None,
        )


# What each export is called when handed out, by kind.
EXPORT_FILES = {"people": "contacts.csv", "sources": "contacts-sources.csv"}


def export_contacts(
    engine: sa.Engine,
    clock: Clock,
    actor: Actor,
    kind: str,
    out: Path,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write one export to `out` and put it on the record (export.created) before anyone can read it.

    An export is a long read, so it does not hold a write transaction (SQLite has one writer): it reads
    its own snapshot, then a short unit of work records who took which export and how many lines."""
    if kind not in EXPORT_FILES:
        raise InvalidInputError(f"Unknown export {kind!r}; use one of {', '.join(EXPORT_FILES)}.", field="kind")
    rows = export_sources(engine, out) if kind == "sources" else export_people(engine, out, progress)
    with unit_of_work(engine, clock, actor) as uow:
        uow.audit("export.created", target=EXPORT_FILES[kind], details={"kind": kind, "rows": rows})
    return rows
