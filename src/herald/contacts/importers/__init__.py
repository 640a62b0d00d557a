"""Contact file readers: a file on disk becomes a stream of ContactRow values (no validation, no database)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from herald.contacts.importers.layouts import (
    CONSENT_STATUSES,
    LAYOUTS,
    detect_layout,
    status_from_file_name,
    unique_keys,
)
from herald.contacts.importers.reading import open_text, read_header, records, sniff
from herald.contacts.importers.rowplan import ContactRow, compile_plan, error_row
from herald.core.errors import InvalidInputError

__all__ = ["CONSENT_STATUSES", "FORMATS", "ContactRow", "ImportSource", "open_source"]

FORMATS = ("auto", "csv", "mailchimp", "hubspot", "constant-contact")


class ImportSource:
    """An opened contact file: its detected shape, and its records as ContactRow values, streamed once."""

    def __init__(self, path: Path, layout_name: str, status_hint: str | None) -> None:
        text = sniff(path)
        self.encoding = text.encoding
        self.encoding_guessed = text.encoding_guessed
        self.delimiter = text.delimiter
        self._handle = open_text(path, text)
        try:
            reader = csv.reader(self._handle, delimiter=text.delimiter)
            headers, self._header_row = read_header(reader)
            keys = unique_keys(headers)
            layout = detect_layout(headers) if layout_name == "auto" else LAYOUTS[layout_name]
            self._plan = compile_plan(
                layout, keys, status_hint=status_hint, file_status=status_from_file_name(path.name)
            )
        except BaseException:
            self._handle.close()
            raise
        self.format = layout.name
        self.headers = keys  # the keys of raw and attributes: blank or repeated headers made unique
        self._reader: Iterator[list[str]] | None = reader

    def __iter__(self) -> Iterator[ContactRow]:
        reader, self._reader = self._reader, None
        if reader is None:
            raise InvalidInputError("An import source can be read only once.", field="file")
        keys = self._plan.keys

        def fail(row_number: int, message: str) -> ContactRow:
            return error_row(row_number, dict.fromkeys(keys, ""), message)

        return records(reader, self._header_row, self._plan.build, fail)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ImportSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_source(path: Path, format: str = "auto", *, status_hint: str | None = None) -> ImportSource:
    """Open a contact export, detect its encoding, delimiter and layout, and check its header row.

    `format` forces a layout ("auto" detects it). `status_hint` is the e-mail consent status of records
    whose file states none (Mailchimp also reads it from names like "unsubscribed_members_export_….csv").
    """
    if format not in FORMATS:
        raise InvalidInputError(
            f"Unknown import format {format!r}; use one of {', '.join(FORMATS)}.",
            field="format",
            value=format,
        )
    if status_hint is not None and status_hint not in CONSENT_STATUSES:
        raise InvalidInputError(
            f"Unknown status hint {status_hint!r}; use one of {', '.join(CONSENT_STATUSES)}.",
            field="status_hint",
            value=status_hint,
        )
    return ImportSource(path, format, status_hint)
