"""Turn a contact file's bytes into CSV records: encoding, delimiter, header row and row numbers."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from herald.core.errors import InvalidInputError

_T = TypeVar("_T")
SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t")
_UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Containers people upload by mistake instead of exporting to CSV; named so the message can say what to do.
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive or Excel workbook (.xlsx)"),
    (b"\xd0\xcf\x11\xe0", "a legacy Excel workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
)
_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1a")
_MAX_CONTROL_SHARE = 0.01
GUESSED_ENCODING = "cp1252"


@dataclass(frozen=True, slots=True)
class TextFormat:
    encoding: str
    delimiter: str
    skip_lines: int  # physical lines to drop before CSV parsing (an Excel "sep=;" directive)

    @property
    def encoding_guessed(self) -> bool:
        """cp1252 is what remains when no BOM says otherwise and the bytes are not UTF-8: a guess."""
        return self.encoding == GUESSED_ENCODING


def sniff(path: Path) -> TextFormat:
    """Decide encoding and delimiter from the first SAMPLE_BYTES of the file."""
    with path.open("rb") as handle:
        prefix = handle.read(SAMPLE_BYTES)
    complete = len(prefix) < SAMPLE_BYTES
    encoding = detect_encoding(prefix, complete=complete)
    text = _decode_sample(prefix, encoding, complete=complete)
    _reject_binary_text(text)
    if not text.strip():
        raise InvalidInputError("The file is empty.", field="file")
    directive = _sep_directive(text)
    if directive is not None:
        return TextFormat(encoding, directive, skip_lines=1)
    return TextFormat(encoding, detect_delimiter(_first_line(text)), skip_lines=0)


def detect_encoding(prefix: bytes, *, complete: bool) -> str:
    """UTF-8 (with or without BOM) when the sample decodes strictly, UTF-16 when it has a BOM, else cp1252."""
    if prefix.startswith(_UTF8_BOM):
        return "utf-8-sig"
    if prefix.startswith(_UTF16_BOMS):
        return "utf-16"
    if not prefix:
        raise InvalidInputError("The file is empty.", field="file")
    _reject_binary_bytes(prefix)
    try:
        # The sample may end inside a multi-byte character; only a complete file must end cleanly.
        codecs.getincrementaldecoder("utf-8")("strict").decode(prefix, final=complete)
    except UnicodeDecodeError:
        return GUESSED_ENCODING
    return "utf-8"


def detect_delimiter(header_line: str) -> str:
    """The most frequent of `,` `;` tab outside double quotes; a comma on a tie or when none occurs."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])  # max keeps the first on ties, and "," is first
    return best if counts[best] else ","


def open_text(path: Path, fmt: TextFormat) -> IO[str]:
    # Only the sample was checked. A file judged UTF-8 may still hold cp1252 bytes later (an ASCII-only
    # first 64 KiB, then "é"), so those bytes are read as cp1252; elsewhere a bad byte becomes U+FFFD.
    errors = _CP1252_FALLBACK if fmt.encoding.startswith("utf-8") else "replace"
    handle = path.open("r", encoding=fmt.encoding, errors=errors, newline="")
    for _ in range(fmt.skip_lines):
        handle.readline()
    return handle


def read_header(reader: Iterator[list[str]]) -> tuple[list[str], int]:
    """Return the first non-blank record and its spreadsheet row number; blank lines before it count."""
    for row, cells in enumerate(reader, start=1):
        if any(cell.strip() for cell in cells):
            _reject_data_as_header(cells)
            return cells, row
    raise InvalidInputError("The file has no header row (it contains only blank lines).", field="file")


def records(
    reader: Iterator[list[str]],
    row: int,
    build: Callable[[int, list[str]], _T],
    fail: Callable[[int, str], _T],
) -> Iterator[_T]:
    """Map each non-blank record, numbered as a spreadsheet shows it; an unparsable record goes to `fail`.

    Taking the mappers here keeps one generator between csv.reader and the caller on the hot path.
    """
    while True:
        try:
            for cells in reader:
                row += 1
                if any(cells):
                    yield build(row, cells)
            return
        except csv.Error as exc:
            # The csv module resumes after the bad record, so one oversized cell does not end the import.
            row += 1
            yield fail(row, f"unreadable record: {exc}")


def _decode_as_cp1252(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("cp1252", errors="replace"), error.end


_CP1252_FALLBACK = "herald-cp1252-fallback"
codecs.register_error(_CP1252_FALLBACK, _decode_as_cp1252)


def _decode_sample(prefix: bytes, encoding: str, *, complete: bool) -> str:
    decoder = codecs.getincrementaldecoder(encoding)("replace")
    return decoder.decode(prefix, final=complete)


def _reject_binary_bytes(prefix: bytes) -> None:
    for magic, what in _MAGIC:
        if prefix.startswith(magic):
            raise InvalidInputError(f"The file is {what}, not a text CSV file; export it as CSV first.", field="file")
    if b"\x00" in prefix:
        raise InvalidInputError("The file is not text (it contains NUL bytes); upload a CSV file.", field="file")


def _reject_binary_text(text: str) -> None:
    controls = sum(1 for char in text if char < " " and char not in _TEXT_CONTROLS)
    if controls > _MAX_CONTROL_SHARE * len(text):
        raise InvalidInputError("The file is not text (too many control characters); upload a CSV file.", field="file")


def _first_line(text: str) -> str:
    """The first non-blank physical line: the header, whose delimiters decide the file's."""
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def _sep_directive(text: str) -> str | None:
    # Excel writes and honours a first line "sep=;"; it is not part of the table, nor a spreadsheet row.
    stripped = text.splitlines()[0].strip() if text else ""
    if len(stripped) == 5 and stripped.lower().startswith("sep=") and stripped[4] in DELIMITERS:
        return stripped[4]
    return None


def _reject_data_as_header(cells: list[str]) -> None:
    for cell in cells:
        text = cell.strip()
        at = text.find("@")
        if at > 0 and "." in text[at:] and " " not in text:
            raise InvalidInputError(
                f"The file has no header row: its first row holds data ({text!r}). "
                "Add a header row that names the columns.",
                field="headers",
            )
