"""Turn a file's ContactRow into a validated Incoming record or a Reject with row, field and reason."""

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
from herald.contacts.resolve import Incoming

if TYPE_CHECKING:
    from herald.contacts.importers import ContactRow


@dataclass(frozen=True, slots=True)
class Reject:
    row_number: int
    reason: str  # invalid_email | invalid_phone | invalid_handle | no_valid_identifier | malformed_row
    field: str | None
    message: str
    raw: dict[str, str]


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


def validate_row(row: ContactRow, default_region: str) -> Incoming | Reject:
    """Validate every identifier cell; one bad cell rejects the whole row (never half-applied)."""
    if row.error:
        return Reject(row.row_number, "malformed_row", None, row.error, row.raw)
    region = (row.country or default_region or "").upper() or None
    idents: list[Identifier] = []
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
                return Reject(row.row_number, exc.reason, field, exc.message, row.raw)
            if (ident.kind, ident.key) not in seen:
                seen.add((ident.kind, ident.key))
                idents.append(ident)
    if not idents:
        return Reject(row.row_number, "no_valid_identifier", None, "the row has no e-mail, phone or handle", row.raw)
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
    return Incoming(
        identifiers=idents, fields=fields, consent=dict(row.consent), row_number=row.row_number, raw=row.raw
    )


def validate_chunk(rows: list[ContactRow], default_region: str) -> list[Incoming | Reject]:
    """Top-level and picklable, so validation can run in worker processes."""
    return [validate_row(row, default_region) for row in rows]


Compact = tuple[Any, ...]


def validate_chunk_compact(rows: list[ContactRow], default_region: str) -> list[Compact]:
    """Like validate_chunk, for worker processes: results without the raw cells the caller already has."""
    out: list[Compact] = []
    for row in rows:
        result = validate_row(row, default_region)
        if isinstance(result, Reject):
            out.append((False, result.reason, result.field, result.message))
        else:
            idents = tuple((i.kind, i.value, i.key) for i in result.identifiers)
            out.append((True, idents, result.fields, result.consent))
    return out


def expand(rows: list[ContactRow], compact: list[Compact]) -> list[Incoming | Reject]:
    """Re-attach row numbers and raw cells to compact results from a worker."""
    out: list[Incoming | Reject] = []
    for row, item in zip(rows, compact, strict=True):
        if item[0]:
            idents = [Identifier(kind, value, key) for kind, value, key in item[1]]
            out.append(Incoming(idents, item[2], item[3], row_number=row.row_number, raw=row.raw))
        else:
            out.append(Reject(row.row_number, item[1], item[2], item[3], row.raw))
    return out
