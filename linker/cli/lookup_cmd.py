"""Placeholder: replaced by the module's real sub-commands."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Register no sub-command yet."""
    _ = (subparsers, argparse)
