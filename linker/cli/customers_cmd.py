"""`linker customers import FILE.csv`: bulk-create profiles, reporting every rejected row."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from linker.cli.commands import help_of
from linker.cli.common import (
    CLI_ACTOR,
    EXIT_FAILURE,
    EXIT_OK,
    command_group,
    print_json,
    run_command,
)
from linker.services.context import ServiceContext
from linker.services.customers import CSV_COLUMNS, CustomerService, ImportProgress
from linker.services.errors import ServiceError

PROGRESS_EVERY_S = 2.0
"""How often the import prints its progress to stderr (and after the last batch)."""


def register(subparsers: Any) -> None:
    """Add ``customers`` with its ``import`` sub-command."""
    commands = command_group(subparsers, "customers", help_of("customers"))
    importer = commands.add_parser(
        "import", help="create profiles from a CSV file",
        description=f"Create a profile per row of a CSV file with the header "
                    f"{','.join(CSV_COLUMNS)} (phone_type MOBILE when empty or left out). "
                    "Good rows are kept; every rejected row is reported with its line number "
                    "and reason, and the exit code is then 1. The file is read as a stream "
                    "and written in batches of 1,000 rows (each its own transaction); "
                    "progress goes to stderr. Imported profiles are not auto-linked: run "
                    "`linker autolink backfill` afterwards.")
    importer.add_argument("file", metavar="FILE.csv")
    importer.add_argument("--json", action="store_true",
                          help="print the report as JSON (created ids and rejected rows)")
    importer.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    """Import the file and print the summary and the rejected rows."""

    def body(ctx: ServiceContext) -> int:
        try:
            with Path(args.file).open(encoding="utf-8-sig", newline="") as stream:
                report = CustomerService(ctx).import_csv(CLI_ACTOR, stream,
                                                         progress=progress_printer())
        except OSError as exc:
            raise ServiceError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        if args.json:
            print_json({**report.counts(), "created_ids": list(report.created),
                        "rejected_rows": report.rejected})
        else:
            counts = report.counts()
            print(f"{args.file}: {counts['rows']} rows, {counts['created']} imported, "
                  f"{counts['rejected']} rejected")
            for row in report.rejected:
                print(f"  line {row.line}: {row.reason}")
        return EXIT_OK if report.ok else EXIT_FAILURE

    return run_command(body)


def progress_printer(every_s: float | None = None) -> Callable[[ImportProgress], None]:
    """A progress callback printing ``rows done / total, imported, rejected`` to stderr at
    most every ``every_s`` seconds (PROGRESS_EVERY_S by default; the summary on stdout follows
    the last batch)."""
    interval = PROGRESS_EVERY_S if every_s is None else every_s
    last = time.monotonic()

    def show(p: ImportProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < interval:
            return
        last = now
        print(f"  {p.rows_done:,} of {p.rows_total:,} rows done (line {p.last_line:,}): "
              f"{p.created:,} imported, {p.rejected:,} rejected", file=sys.stderr)

    return show
