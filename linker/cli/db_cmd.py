"""`linker db upgrade` and `linker prune`: database maintenance."""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from linker.cli.commands import help_of
from linker.config import Settings
from linker.store.database import Database, display_url
from linker.store.retention import prune_exchanges, retention_age

_MAX_DAYS = 100_000


def register(subparsers: Any) -> None:
    """Add the ``db`` and ``prune`` sub-commands."""
    db_parser = subparsers.add_parser("db", help=help_of("db"))
    db_commands = db_parser.add_subparsers(dest="db_command", metavar="DB_COMMAND")
    db_commands.required = True
    upgrade = db_commands.add_parser(
        "upgrade", help="migrate the database to the newest schema (safe to repeat)")
    upgrade.set_defaults(func=run_upgrade)

    prune = subparsers.add_parser("prune", help=help_of("prune"))
    prune.add_argument("--older-than", type=_days, metavar="DAYS", default=None,
                       help="delete exchanges older than DAYS days "
                            "(default LINKER_RETENTION_DAYS, 30)")
    prune.set_defaults(func=run_prune)


def run_upgrade(args: argparse.Namespace) -> int:
    """Migrate the configured database and print the revision reached."""
    settings = Settings.from_env()
    database = Database(settings.database_url)
    try:
        before = database.current_revision()
        revision = database.upgrade()
    finally:
        database.dispose()
    state = "already at" if before == revision else f"upgraded from {before or 'empty'} to"
    print(f"database {display_url(database.url)}: {state} revision {revision}")
    return 0


def run_prune(args: argparse.Namespace) -> int:
    """Delete exchanges older than the retention age and print how many were deleted."""
    settings = Settings.from_env()
    age = timedelta(days=args.older_than) if args.older_than is not None else retention_age(
        settings)
    database = Database(settings.database_url)
    try:
        database.upgrade()
        with database.session() as session:
            deleted = prune_exchanges(session, age, datetime.now(UTC))
    finally:
        database.dispose()
    print(f"deleted {deleted} exchange{'' if deleted == 1 else 's'} older than "
          f"{_format_days(age)}")
    return 0


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from exc
    if not math.isfinite(days) or not 0 <= days <= _MAX_DAYS:
        raise argparse.ArgumentTypeError(f"the number of days must be between 0 and {_MAX_DAYS}")
    return days


def _format_days(age: timedelta) -> str:
    days = age.total_seconds() / 86400
    text = f"{days:g}"
    return f"{text} day{'' if text == '1' else 's'}"
