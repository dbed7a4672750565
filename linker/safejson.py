"""JSON from untrusted sources (adaptors, stored bodies): parsed with a depth cap, walked
without recursion.

A lookup answer is a few levels deep; anything nested deeper than ``MAX_DEPTH`` is refused
with ``JsonTooDeep`` (a ``ValueError``, so callers that handle invalid JSON handle it too)
instead of exhausting the interpreter's recursion limit in a parser, a validator or a printer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

MAX_DEPTH = 64


class JsonTooDeep(ValueError):
    """A JSON document nested deeper than the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")
        self.limit = limit


def loads(text: str | bytes | bytearray, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` that raises ``ValueError`` (never ``RecursionError``) for any bad input,
    and ``JsonTooDeep`` for documents nested deeper than ``max_depth``."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonTooDeep(max_depth) from None
    if _openings(text) > max_depth:  # fewer brackets than the cap: it cannot be too deep
        check_depth(value, max_depth)
    return value


def _openings(text: str | bytes | bytearray) -> int:
    """How many ``[`` and ``{`` the text holds (in strings too): a bound on its depth."""
    if isinstance(text, str):
        return text.count("[") + text.count("{")
    return text.count(b"[") + text.count(b"{")


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``JsonTooDeep`` when ``value`` has lists/dicts nested deeper than ``max_depth``."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > max_depth:
            raise JsonTooDeep(max_depth)
        pending.extend((child, depth + 1) for child in children)


def strings(value: Any) -> Iterator[str]:
    """Every string in a decoded JSON value, keys included, without recursion."""
    pending: list[Any] = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            yield current
        elif isinstance(current, dict):
            for key, item in current.items():
                yield str(key)
                pending.append(item)
        elif isinstance(current, list):
            pending.extend(current)


def map_strings(value: Any, change: Callable[[str], str]) -> Any:
    """A copy of a decoded JSON value with ``change`` applied to every string (keys too),
    built without recursion."""
    if not isinstance(value, dict | list):
        return change(value) if isinstance(value, str) else value
    root: Any = {} if isinstance(value, dict) else []
    pending: list[tuple[Any, Any]] = [(value, root)]
    while pending:
        source, target = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, dict | list):
                copy: Any = {} if isinstance(item, dict) else []
                pending.append((item, copy))
            else:
                copy = change(item) if isinstance(item, str) else item
            if isinstance(target, dict):
                target[change(str(key))] = copy
            else:
                target.append(copy)
    return root


def dumps_readable(value: Any) -> str:
    """Indented JSON for people, non-ASCII kept; ``ValueError`` when too deep to print."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except RecursionError:
        raise JsonTooDeep(MAX_DEPTH) from None
