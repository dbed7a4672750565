"""`linker probe`: scheduled conformance probes per integration.

- ``probe set NAME [--enable|--disable] [--every N] [--slo-ms MS|--no-slo] [--known-email E]
  [--known-phone P]``: change what is given, keep the rest;
- ``probe status [--json]``: every integration's probe (last probe, p95 vs SLO, degraded and
  why, next due);
- ``probe run-due [--watch SECONDS]``: run the probes that are due in this process (the way
  SQLite runs them; on PostgreSQL ``linker worker`` does it every minute). ``--watch`` repeats
  until Ctrl-C. Exit status 1 when a probe run here left its integration degraded.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

from linker.cli.commands import help_of
from linker.cli.common import (
    CLI_ACTOR,
    EXIT_FAILURE,
    EXIT_OK,
    command_group,
    print_json,
    print_table,
    run_command,
    whole_number,
)
from linker.core.probes import MAX_EVERY_MINUTES, MIN_EVERY_MINUTES, ProbeSettingsInput
from linker.services.context import ServiceContext
from linker.services.integrations import IntegrationService
from linker.services.probes import ProbeResult, ProbeService, ProbeStatus


def register(subparsers: Any) -> None:
    """Add ``probe set``, ``probe status`` and ``probe run-due``."""
    commands = command_group(subparsers, "probe", help_of("probe"), description=__doc__,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    change = commands.add_parser("set", help="change an integration's probe settings")
    change.add_argument("name", help="the integration's name")
    switch = change.add_mutually_exclusive_group()
    switch.add_argument("--enable", dest="enabled", action="store_const", const=True)
    switch.add_argument("--disable", dest="enabled", action="store_const", const=False)
    change.add_argument("--every", type=whole_number(MIN_EVERY_MINUTES, MAX_EVERY_MINUTES),
                        metavar="MINUTES", help="minutes between probes (1..1440, default 15)")
    slo = change.add_mutually_exclusive_group()
    slo.add_argument("--slo-ms", type=float, metavar="MS",
                     help="p95 latency SLO in milliseconds: above it the integration is "
                     "degraded")
    slo.add_argument("--no-slo", action="store_true", help="remove the latency SLO")
    change.add_argument("--known-email", metavar="E",
                        help="the email of a person the adaptor holds (needed to enable)")
    change.add_argument("--known-phone", metavar="P",
                        help="a phone of that person (adds the BASIC phone check); '' removes")
    change.set_defaults(func=run_set)
    status = commands.add_parser("status", help="every integration's probe status")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=run_status)
    due = commands.add_parser("run-due", help="run the probes that are due, in this process")
    due.add_argument("--watch", type=float, metavar="SECONDS", default=None,
                     help="repeat every SECONDS until Ctrl-C")
    due.set_defaults(func=run_due)


def run_set(args: argparse.Namespace) -> int:
    """Apply the given settings over the stored ones and print the result."""

    def body(ctx: ServiceContext) -> int:
        integration = IntegrationService(ctx).get_by_name(CLI_ACTOR, args.name)
        probes = ProbeService(ctx)
        now = probes.settings(CLI_ACTOR, integration.id)
        given = ProbeSettingsInput(now.enabled, now.every_minutes, now.p95_slo_ms,
                                   now.known_email, now.known_phone)
        if args.enabled is not None:
            given = replace(given, enabled=args.enabled)
        if args.every is not None:
            given = replace(given, every_minutes=args.every)
        if args.no_slo or args.slo_ms is not None:
            given = replace(given, p95_slo_ms=None if args.no_slo else args.slo_ms)
        if args.known_email is not None:
            given = replace(given, known_email=args.known_email)
        if args.known_phone is not None:
            given = replace(given, known_phone=args.known_phone or None)
        saved = probes.configure(CLI_ACTOR, integration.id, given)
        slo_text = f"p95 SLO {saved.p95_slo_ms:g} ms" if saved.p95_slo_ms else "no p95 SLO"
        print(f"{integration.name}: probe {'on' if saved.enabled else 'off'}, every "
              f"{saved.every_minutes} min, {slo_text}, known email "
              f"{saved.known_email or '(none)'}")
        return EXIT_OK

    return run_command(body)


def status_row(status: ProbeStatus) -> list[object]:
    """One line of ``probe status``."""
    card = status.card
    return [status.name, status.state,
            f"{status.every_minutes} min" if status.enabled else "",
            card.started_at.isoformat(timespec="seconds") if card else "",
            ("passed" if card.passed else "failed") if card else "",
            f"{card.p95_ms:.0f}" if card and card.p95_ms is not None else "",
            f"{status.p95_slo_ms:g}" if status.p95_slo_ms else "",
            status.next_due_at.isoformat(timespec="seconds") if status.next_due_at else "",
            card.id if card else "", status.verdict.reason if status.verdict else ""]


def run_status(args: argparse.Namespace) -> int:
    """Print every integration's probe."""

    def body(ctx: ServiceContext) -> int:
        statuses = ProbeService(ctx).statuses(CLI_ACTOR)
        if args.json:
            print_json([{**vars(s), "state": s.state} for s in statuses])
        else:
            print_table(["integration", "probe", "every", "last probe", "checks", "p95 ms",
                         "SLO ms", "next due", "card", "why"],
                        [status_row(s) for s in statuses])
        return EXIT_OK

    return run_command(body)


def result_line(result: ProbeResult) -> str:
    """One line per probe run."""
    if result.card is None:
        return f"integration {result.integration_id}: not run: {result.error}"
    verdict = result.verdict
    state = "degraded" if verdict and verdict.degraded else "ok"
    why = verdict.reason if verdict else ""
    return (f"{result.card.integration_name}: {state} ({why}); report card "
            f"{result.card.id}")


def run_due(args: argparse.Namespace) -> int:
    """Run the due probes once, or every ``--watch`` seconds until interrupted."""
    if args.watch is not None and not args.watch > 0:
        print("error: --watch must be more than 0 seconds")
        return EXIT_FAILURE

    def body(ctx: ServiceContext) -> int:
        probes = ProbeService(ctx)
        try:
            while True:
                results = probes.run_due(CLI_ACTOR)
                for result in results:
                    print(result_line(result), flush=True)
                if args.watch is None:
                    if not results:
                        print("no probe is due")
                    degraded = any(r.verdict is None or r.verdict.degraded for r in results)
                    return EXIT_FAILURE if degraded else EXIT_OK
                time.sleep(args.watch)  # the schedule's tick, not a wait in a test
        except KeyboardInterrupt:
            return EXIT_OK

    return run_command(body)
