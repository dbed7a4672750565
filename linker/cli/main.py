"""Entry point of the `linker` command: one sub-command module per area, each with register()."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

# Each module defines register(subparsers); a sub-command sets `func(args) -> int` as default.
COMMAND_MODULES = [
    "linker.cli.adaptor_cmd",
    "linker.cli.lookup_cmd",
    "linker.cli.conformance_cmd",
    "linker.cli.db_cmd",
    "linker.cli.reports_cmd",
    "linker.cli.exchanges_cmd",
    "linker.cli.users_cmd",
    "linker.cli.integrations_cmd",
    "linker.cli.customers_cmd",
    "linker.cli.autolink_cmd",
    "linker.cli.demo_cmd",
    "linker.cli.worker_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="linker",
        description="Link customer profiles to external systems through lookup adaptors.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code (2 for usage errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
