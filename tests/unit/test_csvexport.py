"""CSV exports neutralise cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import io

import pytest

from linker.csvexport import csv_text, safe_cell


@pytest.mark.parametrize("value", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\t=x", "\r=x",
                                   '=HYPERLINK("http://evil.example")'])
def test_formula_starts_are_neutralised(value: str) -> None:
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["alice", "a=b", "", "1-2", " =x"])
def test_other_text_is_unchanged(value: str) -> None:
    assert safe_cell(value) == value


def test_csv_round_trips_with_neutralised_cells() -> None:
    text = csv_text(["id", "name"], [("c1", "=cmd|' /C calc'!A0"), ("c2", 'Ann "A", B'),
                                      ("c3", None)])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["id", "name"], ["c1", "'=cmd|' /C calc'!A0"], ["c2", 'Ann "A", B'],
                    ["c3", ""]]
