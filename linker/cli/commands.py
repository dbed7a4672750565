"""The `linker` sub-commands: each name, the module that registers it and its one-line help.

Light on purpose (no imports): ``linker --help`` lists these without importing any command
module; running a command imports only the module that registers it.
"""

from __future__ import annotations

from typing import NamedTuple


class Command(NamedTuple):
    """A sub-command: the module whose ``register(subparsers)`` adds it, and its help line."""

    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "adaptor": Command("linker.cli.adaptor_cmd", "run a reference lookup adaptor"),
    "lookup": Command("linker.cli.lookup_cmd", "send one lookup request to an adaptor and show "
                      "request, response and verdict"),
    "conformance": Command("linker.cli.conformance_cmd", "check that an adaptor keeps the "
                           "lookup contract (report card)"),
    "db": Command("linker.cli.db_cmd", "database maintenance"),
    "prune": Command("linker.cli.db_cmd", "delete old exchanges from the exchange log"),
    "coverage": Command("linker.cli.reports_cmd", "how many profiles are linked, and how"),
    "exchanges": Command("linker.cli.exchanges_cmd", "the exchange log"),
    "users": Command("linker.cli.users_cmd", "console accounts and their roles"),
    "integrations": Command("linker.cli.integrations_cmd", "configure integrations"),
    "customers": Command("linker.cli.customers_cmd", "customer profiles"),
    "autolink": Command("linker.cli.autolink_cmd", "auto-linking"),
    "demo": Command("linker.cli.demo_cmd", "run the demo: reference adaptors, seeded database, "
                    "dashboard"),
    "worker": Command("linker.cli.worker_cmd", "run background jobs (PostgreSQL)"),
    "probe": Command("linker.cli.probe_cmd", "scheduled conformance probes per integration"),
}


def help_of(name: str) -> str:
    """The one-line help of the sub-command ``name``."""
    return COMMANDS[name].help
