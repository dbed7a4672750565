"""`linker coverage` and `linker exchanges export`: reports for scripts and support leads."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from linker.cli.common import CLI_ACTOR, EXIT_OK, EXIT_USAGE, print_table, run_command
from linker.services.context import ServiceContext
from linker.services.exchanges import ExchangeFilter, ExchangeService
from linker.services.reports import ReportService


def register(subparsers: Any) -> None:
    """Add the ``coverage`` and ``exchanges`` sub-commands."""
    coverage = subparsers.add_parser("coverage", help="how many profiles are linked, and how")
    coverage.add_argument("--json", action="store_true", help="print one JSON object")
    coverage.set_defaults(func=_coverage)

    exchanges = subparsers.add_parser("exchanges", help="the exchange log")
    actions = exchanges.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    export = actions.add_parser("export", help="print stored exchanges (secrets masked)")
    export.add_argument("--integration", help="only this integration (by name)")
    export.add_argument("--since", help="only exchanges at or after this ISO time, e.g. 2026-11-01")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.set_defaults(func=_export)


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


def parse_since(text: str) -> datetime:
    """An ISO date or time; naive values are read as UTC. ValueError when unreadable."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _export(args: argparse.Namespace) -> int:
    since = None
    if args.since:
        try:
            since = parse_since(args.since)
        except ValueError:
            print(f"error: --since {args.since!r} is not an ISO date or time "
                  "(e.g. 2026-11-01 or 2026-11-01T08:00:00Z)", file=sys.stderr)
            return EXIT_USAGE

    def body(ctx: ServiceContext) -> int:
        filters = ExchangeFilter(integration_name=args.integration, since=since)
        for line in ExchangeService(ctx).export_jsonl(CLI_ACTOR, filters):
            print(line)
        return EXIT_OK

    return run_command(body)
