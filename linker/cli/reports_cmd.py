"""`linker coverage`: link coverage for scripts and support leads."""

from __future__ import annotations

import argparse
from typing import Any

from linker.cli.commands import help_of
from linker.cli.common import CLI_ACTOR, EXIT_OK, print_table, run_command
from linker.services.context import ServiceContext
from linker.services.reports import ReportService


def register(subparsers: Any) -> None:
    """Add the ``coverage`` sub-command."""
    coverage = subparsers.add_parser("coverage", help=help_of("coverage"))
    coverage.add_argument("--json", action="store_true", help="print one JSON object")
    coverage.set_defaults(func=_coverage)


def _coverage(args: argparse.Namespace) -> int:
    def body(ctx: ServiceContext) -> int:
        report = ReportService(ctx).coverage(CLI_ACTOR)
        if args.json:
            import json

            print(json.dumps(report.as_dict(), indent=2))
            return EXIT_OK
        print(f"{report.linked} of {report.customers} profiles linked "
              f"({report.linked_share:.0%})")
        print()
        print_table(["integration", "linked", "auto", "manual"],
                    [(i.name, i.linked, i.auto, i.manual) for i in report.integrations])
        print()
        print_table(["latest auto-link outcome", "profiles"], list(report.outcomes.items()))
        return EXIT_OK

    return run_command(body)
