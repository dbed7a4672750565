"""Untrusted text made safe to store, print and export, and the characters input may not hold.

- PostgreSQL text and JSONB cannot hold NUL: ``without_nul`` replaces it with U+FFFD.
- A terminal obeys escape sequences: ``for_terminal`` drops ANSI sequences and control
  characters (newline and tab are kept).
- Spreadsheets run cells starting with ``= + - @`` (or tab/CR) as formulas: ``csv_cell``
  prefixes them with an apostrophe.
- Names, emails and integration names may not hold NUL, other control characters, invisible
  (zero-width) or bidirectional-override characters: ``forbidden_character`` finds them.
"""

from __future__ import annotations

import re
import unicodedata

NUL_REPLACEMENT = "\ufffd"
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Bidi embeddings/overrides/isolates and the invisible joiners, marks and spaces.
_INVISIBLE = frozenset(
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063"
    "\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u206c\u206d\u206e\u206f\ufeff\u00ad\u180e"
)


def without_nul(text: str) -> str:
    """``text`` with every NUL character replaced by U+FFFD (storable on PostgreSQL)."""
    return text.replace("\x00", NUL_REPLACEMENT) if "\x00" in text else text


def for_terminal(text: str) -> str:
    """``text`` without ANSI escape sequences, control characters (newline, tab kept) or
    bidirectional overrides."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def csv_cell(value: str) -> str:
    """A cell value a spreadsheet shows as text: formula-like starts get a leading ``'``."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def forbidden_character(text: str, *, multiline: bool = False) -> str | None:
    """A description of the first control, invisible or bidi-override character, or None.

    ``multiline`` allows line breaks and tabs (names and addresses written on several lines).
    """
    if text.isascii() and text.isprintable():  # printable ASCII holds none of them
        return None
    for index, char in enumerate(text):
        if multiline and char in "\n\r\t":
            continue
        if char in _INVISIBLE or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co"):
            name = unicodedata.name(char, "control character")
            return f"U+{ord(char):04X} ({name}) at position {index + 1}"
    return None


def nfkc(text: str) -> str:
    """``text`` in Unicode NFKC form (full-width letters become ASCII, ligatures split)."""
    return unicodedata.normalize("NFKC", text)
