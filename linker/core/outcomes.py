"""Auto-link outcomes in words, the same in the CLI and the console."""

from __future__ import annotations

WOULD_LINK = "would link"
"""What ``linked`` means in a dry run: nothing was linked."""


def outcome_label(outcome: str, *, dry_run: bool = False) -> str:
    """An outcome value as people read it: ``no_field_match`` → ``no field match``; in a dry
    run ``linked`` → ``would link``."""
    value = str(outcome)
    if dry_run and value == "linked":
        return WOULD_LINK
    return value.replace("_", " ")
