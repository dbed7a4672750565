"""Rows of a customer import file (``name,email,phone,phone_type``), read as a stream.

``check_file`` reads a file once for what would make the whole file unusable (its header, CSV
it cannot read, text that is not UTF-8, the size caps); ``read_rows`` then turns it, one row at
a time, into checked candidates and rejected rows with their line numbers. Nothing here holds
the whole file; only the values seen so far are kept, to reject duplicates within the file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from linker.core.contact import ContactData, ContactProblems, check_contact
from linker.core.errors import LinkerError

if TYPE_CHECKING:
    from _csv import Reader as _reader

CSV_COLUMNS = ("name", "email", "phone", "phone_type")
"""Columns of an import file; ``phone_type`` may be left out (MOBILE)."""

MAX_IMPORT_CHARS = 256 * 1024 * 1024
"""The largest file read (characters): about 4 million rows of typical contact data."""
MAX_IMPORT_ROWS = 1_000_000
"""The most rows a file may have (besides its header)."""


class CsvFileProblem(LinkerError, ValueError):
    """The file as a whole cannot be imported; ``field`` is ``header`` or ``file`` and the
    message names the line and what to do."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class RejectedRow:
    """A row of an import file that was not imported, and why."""

    line: int
    """1-based line number in the file (the header is line 1)."""
    reason: str
    text: str
    """The row's values as read, joined by commas."""


@dataclass(frozen=True)
class CandidateRow:
    """A row whose values are valid (not yet checked against stored profiles)."""

    line: int
    data: ContactData
    text: str


def check_file(lines: Iterable[str]) -> int:
    """Read the whole file once and return its number of rows after the header; CsvFileProblem
    for an empty or malformed header, unreadable CSV, non-UTF-8 text or a file over the caps."""
    _, rows = _rows(lines)
    _header(next(rows, None))
    return sum(1 for _ in rows)


def read_rows(lines: Iterable[str]) -> Iterator[CandidateRow | RejectedRow]:
    """Every row after the header, in file order: a CandidateRow when its values are valid and
    not a duplicate of an earlier row, else a RejectedRow with its reason. Blank lines are
    rejected as ``empty row`` only when a row with data follows them (trailing blank lines are
    ignored), so the number of items is the number of rows. CsvFileProblem as ``check_file``."""
    reader, rows = _rows(lines)
    columns = _header(next(rows, None))
    empty_lines: list[int] = []
    seen: dict[str, int] = {}
    line = reader.line_num + 1
    for row in rows:
        start, line = line, reader.line_num + 1
        if not any(v.strip() for v in row):
            empty_lines.append(start)
            continue
        yield from (RejectedRow(n, "empty row", "") for n in empty_lines)
        empty_lines.clear()
        yield _one_row(start, row, columns, seen)


def _one_row(line: int, row: list[str], columns: list[str],
             seen: dict[str, int]) -> CandidateRow | RejectedRow:
    row_text = ",".join(row)
    if len(row) < len(columns):
        absent = ", ".join(columns[len(row):])
        return RejectedRow(line, f"missing columns: {absent} (the row has {len(row)} values, "
                                 f"the header {len(columns)})", row_text)
    if len(row) > len(columns):
        return RejectedRow(line, f"too many values: {len(row)} (the header has "
                                 f"{len(columns)} columns)", row_text)
    values = {c: v.strip() for c, v in zip(columns, row, strict=True)}
    try:
        data = check_contact(values.get("name", ""), [values.get("email", "")],
                             [(values.get("phone", ""), values.get("phone_type", ""))])
    except ContactProblems as exc:
        labels = {"emails": "bad email", "phones": "bad phone", "name": "bad name",
                  "address": "bad address"}
        return RejectedRow(line, "; ".join(f"{labels.get(k, k)}: {v}"
                                           for k, v in exc.fields.items()), row_text)
    keys = data.unique_values or [f"row:{data.display()}"]
    earlier = next(((k, seen[k]) for k in keys if k in seen), None)
    if earlier is not None:
        value = earlier[0] if not earlier[0].startswith("row:") else "the same values"
        return RejectedRow(line, f"duplicate of line {earlier[1]} ({value})", row_text)
    seen.update({k: line for k in keys})
    return CandidateRow(line, data, row_text)


def _header(row: list[str] | None) -> list[str]:
    expected = ",".join(CSV_COLUMNS)
    if row is None or not any(c.strip() for c in row):
        raise CsvFileProblem("header", "the file is empty or its first line is blank; the "
                                       f"first line must be {expected}")
    columns = [c.strip().lower().lstrip("\ufeff").strip() for c in row]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    missing = [c for c in CSV_COLUMNS[:3] if c not in columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or missing or repeated:
        problems = ([f"unknown column(s) {', '.join(map(repr, unknown))}"] if unknown else []) + (
            [f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"repeated column(s) {', '.join(repeated)}"] if repeated else [])
        raise CsvFileProblem("header", f"line 1: {'; '.join(problems)}; the first line must "
                                       f"be {expected} (phone_type optional)")
    return columns


def _rows(lines: Iterable[str]) -> tuple[_reader, Iterator[list[str]]]:
    """A csv reader over ``lines`` (for its ``line_num``) and its rows, checked."""
    reader = csv.reader(_capped(lines))
    return reader, _checked(reader)


def _capped(lines: Iterable[str]) -> Iterator[str]:
    total = 0
    for line in lines:
        total += len(line)
        if total > MAX_IMPORT_CHARS:
            raise CsvFileProblem("file", f"the file has more than {MAX_IMPORT_CHARS:,} "
                                         "characters; split it into smaller files and import "
                                         "each")
        yield line


def _checked(reader: _reader) -> Iterator[list[str]]:
    """``reader``'s rows, at most MAX_IMPORT_ROWS after the header; CsvFileProblem (naming the
    line) for what csv cannot read, e.g. a value over csv's field size limit."""
    line_num = 0
    try:
        for count, row in enumerate(reader):
            if count > MAX_IMPORT_ROWS:
                raise CsvFileProblem("file", f"the file has more than {MAX_IMPORT_ROWS:,} rows; "
                                             "split it into smaller files and import each")
            line_num = reader.line_num
            yield row
    except csv.Error as exc:
        limit = csv.field_size_limit()
        reason = (f"a value is longer than {limit:,} characters (is a quote left open?)"
                  if "field limit" in str(exc) else f"the line cannot be read as CSV ({exc})")
        raise CsvFileProblem("file", f"line {reader.line_num}: {reason}"
                             ) from None
    except UnicodeDecodeError:
        raise CsvFileProblem("file", f"near line {line_num + 1}: the text is not UTF-8; save "
                                     "the file as UTF-8 and import it again") from None
