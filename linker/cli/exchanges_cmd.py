"""`linker exchanges`: the exchange log from the command line (list, show, curl, replay, export).

Every sub-command reads the stored, already redacted exchanges; ``replay`` sends one request
again now (re-signed) and stores the new exchange.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from linker.cli.commands import help_of
from linker.cli.common import (
    CLI_ACTOR,
    EXIT_OK,
    EXIT_USAGE,
    command_group,
    print_json,
    print_table,
    run_command,
)
from linker.contract import RequestKind
from linker.jsondiff import BodyDiff, ChangeOp
from linker.lookup.exchange import ErrorKind, Trigger
from linker.services.context import ServiceContext
from linker.services.exchange_log import DEFAULT_PAGE_SIZE, ExchangeFilter, ExchangeLogService
from linker.services.replay import ReplayService

_SIGNS = {ChangeOp.ADDED: "+", ChangeOp.REMOVED: "-", ChangeOp.CHANGED: "~"}


def register(subparsers: Any) -> None:
    """Add ``exchanges`` with its list, show, curl, replay and export sub-commands."""
    actions = command_group(subparsers, "exchanges", help_of("exchanges"))
    listing = actions.add_parser("list", help="one page of the log, newest first")
    _add_filters(listing)
    listing.add_argument("--after", metavar="CURSOR", help="the cursor printed under the "
                         "previous page")
    listing.add_argument("--limit", type=int, default=DEFAULT_PAGE_SIZE, metavar="N")
    listing.add_argument("--json", action="store_true", help="print one JSON object")
    listing.set_defaults(func=_list)

    show = actions.add_parser("show", help="one exchange as JSON (secrets masked)")
    show.add_argument("id", type=int)
    show.set_defaults(func=_show)

    curl = actions.add_parser("curl", help="a cURL command reproducing an exchange's request")
    curl.add_argument("id", type=int)
    curl.add_argument("--json", action="store_true", help="print one JSON object")
    curl.set_defaults(func=_curl)

    replay = actions.add_parser("replay", help="send an exchange's request again now, store it "
                                "and diff the response bodies")
    replay.add_argument("id", type=int)
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.set_defaults(func=_replay)

    export = actions.add_parser(
        "export", help="print stored exchanges as JSON lines, newest first (secrets masked)")
    _add_filters(export)
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.set_defaults(func=_export)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--integration", help="only this integration (by name)")
    parser.add_argument("--trigger", choices=[t.value for t in Trigger],
                        help="only exchanges caused by this")
    parser.add_argument("--kind", choices=[k.value for k in RequestKind],
                        help="only this request kind")
    parser.add_argument("--error-kind", metavar="KIND",
                        help="ok, failed, or one error kind: " + ", ".join(ErrorKind))
    parser.add_argument("--status", type=int, metavar="CODE", help="only this HTTP status")
    parser.add_argument("--customer", metavar="ID", help="only this customer id")
    parser.add_argument("--correlation-id", metavar="ID", help="only this correlation id")
    parser.add_argument("--since", help="only exchanges at or after this ISO time, e.g. 2026-11-01")
    parser.add_argument("--until", help="only exchanges before this ISO time")


def parse_since(text: str) -> datetime:
    """An ISO date or time; naive values are read as UTC. ValueError when unreadable."""
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _filters(args: argparse.Namespace) -> ExchangeFilter | None:
    """The filter the options describe; None (after printing why) when a time is unreadable."""
    moments: dict[str, datetime | None] = {}
    for option in ("since", "until"):
        text = getattr(args, option)
        try:
            moments[option] = parse_since(text) if text else None
        except ValueError:
            print(f"error: --{option} {text!r} is not an ISO date or time "
                  "(e.g. 2026-11-01 or 2026-11-01T08:00:00Z)", file=sys.stderr)
            return None
    return ExchangeFilter(
        integration_name=args.integration, trigger=args.trigger, kind=args.kind,
        error_kind=args.error_kind, status=args.status, customer_id=args.customer,
        correlation_id=args.correlation_id, since=moments["since"], until=moments["until"])


def _list(args: argparse.Namespace) -> int:
    filters = _filters(args)
    if filters is None:
        return EXIT_USAGE

    def body(ctx: ServiceContext) -> int:
        page = ExchangeLogService(ctx).page(CLI_ACTOR, filters, after=args.after,
                                            limit=args.limit)
        cursor = str(page.next_cursor) if page.next_cursor else None
        if args.json:
            print_json({"rows": list(page.rows), "next_cursor": cursor})
            return EXIT_OK
        print_table(["id", "started at", "integration", "trigger", "kind", "status", "error",
                     "ms", "customer"],
                    [(r.id, f"{r.started_at:%Y-%m-%d %H:%M:%S}", r.integration_name,
                      r.trigger.value, r.kind.value, r.status,
                      r.error_kind.value if r.error_kind else "", f"{r.elapsed_ms:.0f}",
                      r.customer_id) for r in page.rows])
        if cursor:
            print(f"\nnext page: --after {cursor}")
        return EXIT_OK

    return run_command(body)


def _show(args: argparse.Namespace) -> int:
    def body(ctx: ServiceContext) -> int:
        print_json(ExchangeLogService(ctx).get(CLI_ACTOR, args.id).as_dict())
        return EXIT_OK

    return run_command(body)


def _curl(args: argparse.Namespace) -> int:
    def body(ctx: ServiceContext) -> int:
        curl = ExchangeLogService(ctx).curl(CLI_ACTOR, args.id)
        if args.json:
            print_json(curl.as_dict())
            return EXIT_OK
        print(curl.command)
        print(f"\n# {curl.note}")
        for var in curl.env:
            print(f"#   ${var.name}: {var.meaning}")
        print(f"\n# or let Linker sign it:\n{curl.lookup_command}")
        return EXIT_OK

    return run_command(body)


def diff_lines(diff: BodyDiff) -> list[str]:
    """The body diff as text lines: ``~ path: old -> new``, ``+ path: new``, ``- path: old``."""
    if diff.same:
        return ["the response bodies are the same"]
    if diff.mode == "text":
        return list(diff.text_lines)

    def shown(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = []
    for change in diff.changes:
        sign = _SIGNS[change.op]
        if change.op is ChangeOp.CHANGED:
            lines.append(f"{sign} {change.path}: {shown(change.old)} -> {shown(change.new)}")
        elif change.op is ChangeOp.ADDED:
            lines.append(f"{sign} {change.path}: {shown(change.new)}")
        else:
            lines.append(f"{sign} {change.path}: {shown(change.old)}")
    return lines


def _replay(args: argparse.Namespace) -> int:
    def body(ctx: ServiceContext) -> int:
        result = ReplayService(ctx).replay(CLI_ACTOR, args.id)
        if args.json:
            print_json({"original": result.original.as_dict(), "replay": result.replay.as_dict(),
                        "diff": result.diff.as_dict(), "url_changed": result.url_changed})
            return EXIT_OK
        new = result.replay
        verdict = "ok" if new.ok else f"failed ({new.error.kind.value})" if new.error else ""
        status = new.response.status if new.response else "no response"
        print(f"replayed exchange {result.original.id} as exchange {new.id}: HTTP {status}, "
              f"{verdict}, {new.elapsed_ms:.0f} ms")
        if result.url_changed:
            print(f"note: sent to the integration's current URL {new.request.url}")
        print("\n".join(diff_lines(result.diff)))
        return EXIT_OK

    return run_command(body)


def _export(args: argparse.Namespace) -> int:
    filters = _filters(args)
    if filters is None:
        return EXIT_USAGE

    def body(ctx: ServiceContext) -> int:
        for line in ExchangeLogService(ctx).export_jsonl(CLI_ACTOR, filters):
            print(line)
        return EXIT_OK

    return run_command(body)
