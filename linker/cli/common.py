"""What the admin sub-commands share: a ServiceContext from the environment, the CLI actor,
turning service errors into exit codes, and printing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, TextIO

from linker.config import Settings
from linker.core.permissions import SYSTEM, Actor
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, ServiceError
from linker.store.secretbox import SecretKeyError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

CLI_ACTOR: Actor = SYSTEM
"""Who the admin command line acts as: whoever can run it owns the data directory."""


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type=``: the text as a whole number from ``low`` to ``high``, or a usage
    error saying so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return value
    return parse


def command_group(subparsers: Any, name: str, help_text: str, **options: Any) -> Any:
    """Add the sub-command ``name`` whose own sub-commands are required; returns the object
    to add them to (``.add_parser``)."""
    parser = subparsers.add_parser(name, help=help_text, **options)
    commands = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
    commands.required = True
    return commands


@contextmanager
def service_context(settings: Settings | None = None) -> Iterator[ServiceContext]:
    """A ServiceContext on the configured database (migrated first), disposed afterwards."""
    ctx = ServiceContext.from_settings(settings or Settings.from_env())
    try:
        yield ctx
    finally:
        ctx.db.dispose()


def error(message: str, stream: TextIO | None = None) -> int:
    """Print ``error: message`` to stderr and return the failure exit code."""
    print(f"error: {message}", file=stream or sys.stderr)
    return EXIT_FAILURE


def describe_error(exc: BaseException) -> str:
    """One line a person can act on for an error a service raised."""
    if isinstance(exc, InvalidInput):
        return "; ".join(f"{name}: {message}" for name, message in exc.fields.items())
    return str(exc)


def run_command(body: Callable[[ServiceContext], int]) -> int:
    """Run ``body`` with a ServiceContext; a service, permission or secret-key error is printed
    and turned into exit code 1."""
    try:
        with service_context() as ctx:
            return body(ctx)
    except (ServiceError, SecretKeyError) as exc:
        return error(describe_error(exc))


def read_text_file(path: str) -> str:
    """The UTF-8 text of ``path``; ServiceError naming the file when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ServiceError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ServiceError(f"{path} is not UTF-8 text; save it as UTF-8 and retry") from None


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: dataclasses as dicts, enums as values, times as ISO."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON (see ``plain``)."""
    print(json.dumps(plain(value), indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows as aligned text columns under a header line."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r]
                                           for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
