"""`linker coverage` and `linker exchanges export`: reports for scripts and support leads."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from linker.cli.common import CLI_ACTOR, EXIT_OK, EXIT_USAGE, print_table, run_command
from linker.contract import RequestKind
from linker.lookup.exchange import ErrorKind, Trigger
from linker.services.context import ServiceContext
from linker.services.exchange_log import ExchangeFilter, ExchangeLogService
from linker.services.reports import ReportService


def register(subparsers: Any) -> None:
    """Add the ``coverage`` and ``exchanges`` sub-commands."""
    coverage = subparsers.add_parser("coverage", help="how many profiles are linked, and how")
    coverage.add_argument("--json", action="store_true", help="print one JSON object")
    coverage.set_defaults(func=_coverage)

    exchanges = subparsers.add_parser("exchanges", help="the exchange log")
    actions = exchanges.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    export = actions.add_parser(
        "export", help="print stored exchanges as JSON lines, newest first (secrets masked)")
    export.add_argument("--integration", help="only this integration (by name)")
    export.add_argument("--trigger", choices=[t.value for t in Trigger],
                        help="only exchanges caused by this")
    export.add_argument("--kind", choices=[k.value for k in RequestKind],
                        help="only this request kind")
    export.add_argument("--error-kind", metavar="KIND",
                        help="ok, failed, or one error kind: " + ", ".join(ErrorKind))
    export.add_argument("--status", type=int, metavar="CODE", help="only this HTTP status")
    export.add_argument("--customer", metavar="ID", help="only this customer id")
    export.add_argument("--correlation-id", metavar="ID", help="only this correlation id")
    export.add_argument("--since", help="only exchanges at or after this ISO time, e.g. 2026-11-01")
    export.add_argument("--until", help="only exchanges before this ISO time")
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


def _times(args: argparse.Namespace) -> tuple[datetime | None, datetime | None] | None:
    moments: list[datetime | None] = []
    for option in ("since", "until"):
        text = getattr(args, option)
        if not text:
            moments.append(None)
            continue
        try:
            moments.append(parse_since(text))
        except ValueError:
            print(f"error: --{option} {text!r} is not an ISO date or time "
                  "(e.g. 2026-11-01 or 2026-11-01T08:00:00Z)", file=sys.stderr)
            return None
    return moments[0], moments[1]


def _export(args: argparse.Namespace) -> int:
    times = _times(args)
    if times is None:
        return EXIT_USAGE

    def body(ctx: ServiceContext) -> int:
        filters = ExchangeFilter(
            integration_name=args.integration, trigger=args.trigger, kind=args.kind,
            error_kind=args.error_kind, status=args.status, customer_id=args.customer,
            correlation_id=args.correlation_id, since=times[0], until=times[1])
        for line in ExchangeLogService(ctx).export_jsonl(CLI_ACTOR, filters):
            print(line)
        return EXIT_OK

    return run_command(body)
