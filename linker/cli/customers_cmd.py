"""`linker customers import FILE.csv`: bulk-create profiles, reporting every rejected row."""

from __future__ import annotations

import argparse
from typing import Any

from linker.cli.common import (
    CLI_ACTOR,
    EXIT_FAILURE,
    EXIT_OK,
    command_group,
    print_json,
    read_text_file,
    run_command,
)
from linker.services.context import ServiceContext
from linker.services.customers import CSV_COLUMNS, CustomerService


def register(subparsers: Any) -> None:
    """Add ``customers`` with its ``import`` sub-command."""
    commands = command_group(subparsers, "customers", "customer profiles")
    importer = commands.add_parser(
        "import", help="create profiles from a CSV file",
        description=f"Create a profile per row of a CSV file with the header "
                    f"{','.join(CSV_COLUMNS)} (phone_type MOBILE when empty or left out). "
                    "Good rows are kept; every rejected row is reported with its line number "
                    "and reason, and the exit code is then 1. Imported profiles are not "
                    "auto-linked: run `linker autolink backfill` afterwards.")
    importer.add_argument("file", metavar="FILE.csv")
    importer.add_argument("--json", action="store_true",
                          help="print the report as JSON (created ids and rejected rows)")
    importer.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    """Import the file and print the summary and the rejected rows."""

    def body(ctx: ServiceContext) -> int:
        report = CustomerService(ctx).import_csv(CLI_ACTOR, read_text_file(args.file))
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
