"""A JSON-aware diff of two response bodies: added, removed and changed paths.

    diff = diff_bodies(original_body, replayed_body)
    diff.mode            # "json" when both bodies are JSON, else "text"
    diff.changes         # Change(path="$.results[0].name", op=CHANGED, old="Ann", new="Anna")
    change.has_before    # False for an added path (old is no value, not JSON null)
    diff.text_lines      # unified diff lines in text mode

Paths use ``$`` for the root, ``.key`` for object keys (``["key"]`` when the key is not a plain
name) and ``[i]`` for list positions. Lists are compared position by position.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from linker import safejson

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TEXT_DIFF_LINES = 2000
_MISSING = object()


class ChangeOp(StrEnum):
    """What happened at a path."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class Change:
    """One difference: the path, what happened, and the values before and after (JSON)."""

    path: str
    op: ChangeOp
    old: Any = None
    new: Any = None

    @property
    def has_before(self) -> bool:
        """False for an added path: nothing was there (``old`` is no value, not JSON null)."""
        return self.op is not ChangeOp.ADDED

    @property
    def has_after(self) -> bool:
        """False for a removed path: nothing is there now (``new`` is no value)."""
        return self.op is not ChangeOp.REMOVED

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"path": self.path, "op": self.op.value, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class BodyDiff:
    """The differences between two bodies; ``same`` when there are none."""

    mode: str
    """``"json"`` (``changes`` filled) or ``"text"`` (``text_lines`` filled)."""
    changes: tuple[Change, ...] = ()
    text_lines: tuple[str, ...] = ()

    @property
    def same(self) -> bool:
        """True when the bodies do not differ."""
        return not self.changes and not self.text_lines

    def counts(self) -> dict[str, int]:
        """How many paths were added, removed and changed (JSON mode)."""
        return {op.value: sum(1 for c in self.changes if c.op is op) for op in ChangeOp}

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"mode": self.mode, "same": self.same,
                "changes": [c.as_dict() for c in self.changes],
                "text_lines": list(self.text_lines)}


def child_path(parent: str, key: str | int) -> str:
    """The path of ``key`` under ``parent``: ``$.a``, ``$["a b"]``, ``$[0]``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if _PLAIN_KEY.match(key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def diff_values(old: Any, new: Any, path: str = "$") -> list[Change]:
    """The changes turning the JSON value ``old`` into ``new``, in document order."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[Change] = []
        for key in list(old) + [k for k in new if k not in old]:
            changes += _diff_member(old.get(key, _MISSING), new.get(key, _MISSING),
                                    child_path(path, str(key)))
        return changes
    if isinstance(old, list) and isinstance(new, list):
        changes = []
        for i in range(max(len(old), len(new))):
            changes += _diff_member(old[i] if i < len(old) else _MISSING,
                                    new[i] if i < len(new) else _MISSING, child_path(path, i))
        return changes
    if type(old) is not type(new) or old != new:
        return [Change(path, ChangeOp.CHANGED, old, new)]
    return []


def _diff_member(old: Any, new: Any, path: str) -> list[Change]:
    if old is _MISSING:
        return [Change(path, ChangeOp.ADDED, None, new)]
    if new is _MISSING:
        return [Change(path, ChangeOp.REMOVED, old, None)]
    return diff_values(old, new, path)


def _parse(body: str | None) -> tuple[bool, Any]:
    """(True, value) for JSON within ``safejson``'s depth cap (so the recursive diff cannot
    overflow the stack), else (False, None): deeper or broken bodies are diffed as text."""
    if body is None:
        return False, None
    try:
        return True, safejson.loads(body)
    except ValueError:
        return False, None


def diff_bodies(old: str | None, new: str | None) -> BodyDiff:
    """Diff two bodies: JSON-aware when both parse as JSON (at most ``safejson.MAX_DEPTH``
    deep), else line by line as text.

    ``None`` (no response) counts as an empty text body.
    """
    old_ok, old_value = _parse(old)
    new_ok, new_value = _parse(new)
    if old_ok and new_ok:
        return BodyDiff("json", changes=tuple(diff_values(old_value, new_value)))
    lines = difflib.unified_diff((old or "").splitlines(), (new or "").splitlines(),
                                 "original", "replay", lineterm="", n=2)
    return BodyDiff("text", text_lines=tuple(list(lines)[:MAX_TEXT_DIFF_LINES]))
