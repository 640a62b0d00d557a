"""Turn a file's ContactRow into a validated Incoming record (with warnings) or a rejected row."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from herald.contacts.export import EXPORT_MARKER
from herald.contacts.identity import (
    EMAIL,
    HANDLE,
    PHONE,
    Identifier,
    IdentifierError,
    clean_cell,
    make_identifier,
)
from herald.contacts.matching import Incoming

if TYPE_CHECKING:
    from herald.contacts.importers import ContactRow


REJECT, WARNING = "reject", "warning"


@dataclass(frozen=True, slots=True)
class RowIssue:
    """A problem with one spreadsheet row: the row was rejected, or imported with a value set aside."""

    row_number: int
    reason: str  # invalid_email | invalid_phone | invalid_handle | no_valid_identifier | malformed_row
    field: str | None
    message: str
    raw: dict[str, str]
    kind: str = REJECT  # reject | warning (the row was imported with its valid identifiers)


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = clean_cell(value)
    return cleaned or None


def _timezone_source(row: ContactRow) -> str | None:
    if not row.timezone:
        return None
    # Our own export carries where the zone came from; any other file is the source itself.
    return row.raw.get("timezone_source") or "import" if EXPORT_MARKER in row.raw else "import"


def validate_row(row: ContactRow, default_region: str) -> list[Incoming | RowIssue]:
    """Validate every identifier cell: the record with its valid ones, plus one warning per invalid one.

    Only a row without any valid identifier is rejected, so one stray "n/a" beside a good e-mail
    never loses a person; the raw value stays in the row's source record.
    """
    if row.error:
        return [RowIssue(row.row_number, "malformed_row", None, row.error, row.raw)]
    region = (row.country or default_region or "").upper() or None
    idents: list[Identifier] = []
    problems: list[tuple[str, str, str]] = []  # (reason, field, message)
    seen: set[tuple[str, str]] = set()
    for kind, values, field in (
        (EMAIL, row.emails, "email"),
        (PHONE, row.phones, "phone"),
        (HANDLE, row.handles, "handle"),
    ):
        for value in values:
            if not value or not value.strip():
                continue
            try:
                ident = make_identifier(kind, value, region)
            except IdentifierError as exc:
                problems.append((exc.reason, field, exc.message))
                continue
            if (ident.kind, ident.key) not in seen:
                seen.add((ident.kind, ident.key))
                idents.append(ident)
    if not idents:
        if not problems:
            return [
                RowIssue(row.row_number, "no_valid_identifier", None, "the row has no e-mail, phone or handle", row.raw)
            ]
        reason, field, _ = problems[0]
        return [RowIssue(row.row_number, reason, field, "; ".join(p[2].rstrip(".") for p in problems), row.raw)]
    fields: dict[str, Any] = {
        "first_name": _text(row.first_name),
        "last_name": _text(row.last_name),
        "company": _text(row.company),
        "country": _text(row.country),
        "locale": _text(row.locale),
        "timezone": _text(row.timezone),
        "timezone_source": _timezone_source(row),
        "attributes": {k: clean_cell(v) for k, v in row.attributes.items() if v and v.strip()},
        "tags": [clean_cell(t) for t in row.tags if t and t.strip()],
    }
    record = Incoming(
        identifiers=idents, fields=fields, consent=dict(row.consent), row_number=row.row_number, raw=row.raw
    )
    return [record, *_warnings(row, problems)]


def _warnings(row: ContactRow, problems: list[tuple[str, str, str]]) -> list[RowIssue]:
    return [
        RowIssue(
            row.row_number, reason, field, f"{message.rstrip('.')}; the row was imported without it", row.raw, WARNING
        )
        for reason, field, message in problems
    ]


def validate_chunk(rows: list[ContactRow], default_region: str) -> list[Incoming | RowIssue]:
    """Top-level and picklable, so validation can run in worker processes; warnings follow their record."""
    return [item for row in rows for item in validate_row(row, default_region)]


Compact = tuple[Any, ...]


def validate_chunk_compact(rows: list[ContactRow], default_region: str) -> list[Compact]:
    """Like validate_chunk, for worker processes: one result per row, without the raw cells the caller has."""
    out: list[Compact] = []
    for row in rows:
        first, *warnings = validate_row(row, default_region)
        if isinstance(first, RowIssue):
            out.append((False, first.reason, first.field, first.message))
        else:
            idents = tuple((i.kind, i.value, i.key) for i in first.identifiers)
            notes = tuple((w.reason, w.field, w.message) for w in warnings if isinstance(w, RowIssue))
            out.append((True, idents, first.fields, first.consent, notes))
    return out


def expand(rows: list[ContactRow], compact: list[Compact]) -> list[Incoming | RowIssue]:
    """Re-attach row numbers and raw cells to compact results from a worker."""
    out: list[Incoming | RowIssue] = []
    for row, item in zip(rows, compact, strict=True):
        if item[0]:
            idents = [Identifier(kind, value, key) for kind, value, key in item[1]]
            out.append(Incoming(idents, item[2], item[3], row_number=row.row_number, raw=row.raw))
            out.extend(
                RowIssue(row.row_number, reason, field, message, row.raw, WARNING) for reason, field, message in item[4]
            )
        else:
            out.append(RowIssue(row.row_number, item[1], item[2], item[3], row.raw))
    return out
