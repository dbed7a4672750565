"""CSV exports that spreadsheets open safely: a cell starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return is prefixed with ``'`` so it is shown as text, never run as a
formula (OWASP "CSV injection")."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """``value`` as CSV cell text, neutralised when a spreadsheet would read it as a formula;
    None becomes an empty cell."""
    if value is None:
        return ""
    cell = str(value)
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def pasted_value(value: str) -> str:
    """A value pasted back from one of these exports, as it was before ``safe_cell``: the one
    leading apostrophe before a formula character is dropped (``'-6QKY…`` → ``-6QKY…``);
    anything else is returned unchanged."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A CSV document (header line first, ``\\r\\n`` line ends) with every cell neutralised."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    return out.getvalue()
