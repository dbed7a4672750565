"""The root of every error Linker raises on purpose; catch ``LinkerError`` to catch them all."""

from __future__ import annotations


class LinkerError(Exception):
    """Base of every error Linker raises on purpose; its message says what failed and what to do."""


__all__ = ["LinkerError"]
