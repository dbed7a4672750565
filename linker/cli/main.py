"""Entry point of the `linker` command: one sub-command module per area, each with register().

Only the module of the command being run is imported (``linker --help`` imports none), so
start-up costs what that command needs; ``linker.cli.commands`` lists the commands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

from linker.cli.commands import COMMANDS

# Each module defines register(subparsers); a sub-command sets `func(args) -> int` as default.
COMMAND_MODULES = list(dict.fromkeys(command.module for command in COMMANDS.values()))


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (its first non-option word), or None."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser. With ``argv``, only the command it names is registered in full
    (the others are listed by name and help); without, every command is."""
    parser = argparse.ArgumentParser(
        prog="linker",
        description="Link customer profiles to external systems through lookup adaptors.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    if argv is None:
        modules = set(COMMAND_MODULES)
    else:
        chosen = _chosen_command(argv)
        modules = {COMMANDS[chosen].module} if chosen else set()
    for name, command in COMMANDS.items():  # in the table's order, as the help lists them
        if name in subparsers.choices:
            continue  # registered by its module with an earlier command (db, prune)
        if command.module in modules:
            import_module(command.module).register(subparsers)
        else:
            subparsers.add_parser(name, help=command.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (2 for usage errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
