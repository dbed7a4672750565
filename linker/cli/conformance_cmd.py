"""`linker conformance`: run the conformance checks against an adaptor URL (for adaptor CI).

Nothing is stored: the report card is printed (``--json`` for one JSON object with every
check's exchange). Exit status: 0 when every required check passes (warnings and skipped
checks do not fail a run), 1 when one fails, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from linker.cli.commands import help_of
from linker.cli.lookup_cmd import add_target_arguments, build_target
from linker.conformance import (
    DEFAULT_LATENCY_CALLS,
    CheckStatus,
    ConformanceOptions,
    ConformanceReport,
    run_checks,
)
from linker.lookup import LookupClient

_LABELS = {CheckStatus.PASS: "PASS", CheckStatus.WARN: "WARN", CheckStatus.FAIL: "FAIL",
           CheckStatus.SKIP: "skip"}


def register(subparsers: Any) -> None:
    """Register the ``conformance`` sub-command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "conformance", help=help_of("conformance"),
        description=__doc__)
    parser.add_argument("url", metavar="URL", help="the adaptor URL, e.g. http://127.0.0.1:8401/")
    parser.add_argument("--known-email", required=True, metavar="E",
                        help="the email of a person the adaptor holds")
    parser.add_argument("--known-phone", metavar="P",
                        help="a phone of a person the adaptor holds (adds a BASIC phone check)")
    parser.add_argument("--latency-calls", type=int, default=DEFAULT_LATENCY_CALLS, metavar="N",
                        help="extra searches sent to measure latency (default "
                        f"{DEFAULT_LATENCY_CALLS})")
    add_target_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=lambda args: run(parser, args))


def render(report: ConformanceReport) -> str:
    """The human report card: a verdict line, then one line per check."""
    counts = {s: sum(1 for c in report.checks if c.status is s) for s in CheckStatus}
    verdict = "PASSED" if report.passed else "FAILED"
    lines = [f"Conformance of {report.url}: {verdict} ("
             + ", ".join(f"{n} {s.value}" for s, n in counts.items()) + ")"]
    width = max(len(c.title) for c in report.checks)
    for check in report.checks:
        optional = "" if check.required else " (optional)"
        lines.append(f"  {_LABELS[check.status]}  {check.title:<{width}}  "
                     f"{check.message}{optional}")
    return "\n".join(lines) + "\n"


def run(parser: argparse.ArgumentParser, args: argparse.Namespace,
        out: TextIO | None = None) -> int:
    """Run the checks and print the card; 0 when every required check passes, else 1."""
    if "@" not in args.known_email:
        parser.error(f"--known-email {args.known_email!r} is not an email address")
    if args.latency_calls < 0:
        parser.error("--latency-calls must be 0 or more")
    target = build_target(parser, args)
    options = ConformanceOptions(known_email=args.known_email, known_phone=args.known_phone,
                                 latency_calls=args.latency_calls)
    report = run_checks(LookupClient(), target, options)
    stream = out or sys.stdout
    if args.json:
        stream.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        stream.write(render(report))
    return 0 if report.passed else 1
