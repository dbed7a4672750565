"""`linker users add|list|set-role|disable|enable`: console accounts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from linker.cli.commands import help_of
from linker.cli.common import (
    CLI_ACTOR,
    EXIT_OK,
    command_group,
    print_json,
    print_table,
    run_command,
)
from linker.core.permissions import Role
from linker.services.context import ServiceContext
from linker.services.users import UserService

ROLES = [r.value for r in Role]


def register(subparsers: Any) -> None:
    """Add ``users`` with its sub-commands."""
    commands = command_group(subparsers, "users", help_of("users"))

    add = commands.add_parser(
        "add", help="create an account, or give an existing one this role (idempotent)",
        description="Create an account. The password is read from stdin when stdin is not a "
                    "terminal and not empty; otherwise a strong one is generated and printed "
                    "once. Re-running with an existing name sets its role (and password, when "
                    "one is piped in).")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    add.set_defaults(func=run_add)

    listing = commands.add_parser("list", help="list accounts")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)

    set_role = commands.add_parser("set-role", help="change an account's role")
    set_role.add_argument("name")
    set_role.add_argument("--role", choices=ROLES, required=True)
    set_role.set_defaults(func=run_set_role)

    for verb, helptext in (("disable", "stop an account from logging in"),
                           ("enable", "let a disabled account log in again")):
        parser = commands.add_parser(verb, help=helptext)
        parser.add_argument("name")
        parser.set_defaults(func=run_toggle, enable=verb == "enable")


def password_from_stdin() -> str | None:
    """The password piped on stdin (one trailing newline removed), or None when stdin is a
    terminal, closed or empty."""
    stream = sys.stdin
    try:
        if stream is None or stream.isatty():
            return None
        text = stream.read()
    except (OSError, ValueError):
        return None
    password = text.removesuffix("\n").removesuffix("\r")
    return password or None


def run_add(args: argparse.Namespace) -> int:
    """Create the account or bring it to the given role; print what happened."""
    password = password_from_stdin()

    def body(ctx: ServiceContext) -> int:
        result = UserService(ctx).ensure_user(CLI_ACTOR, args.name, args.role, password)
        user = result.user
        if result.created:
            print(f"created user {user.username} ({user.role.value})")
        elif result.changed:
            print(f"updated user {user.username}: {', '.join(result.changed)}")
        else:
            print(f"unchanged user {user.username} ({user.role.value})")
        if result.generated_password:
            print(f"password: {result.generated_password}")
            print("(shown once: store it now; it cannot be displayed again)")
        return EXIT_OK

    return run_command(body)


def run_list(args: argparse.Namespace) -> int:
    """Print every account with its role and state."""

    def body(ctx: ServiceContext) -> int:
        users = UserService(ctx).list(CLI_ACTOR)
        if args.json:
            print_json([u.display() for u in users])
        else:
            print_table(["username", "role", "state"],
                        [(u.username, u.role.value, "disabled" if u.disabled else "enabled")
                         for u in users])
        return EXIT_OK

    return run_command(body)


def run_set_role(args: argparse.Namespace) -> int:
    """Change an account's role."""

    def body(ctx: ServiceContext) -> int:
        user = UserService(ctx).change_role(CLI_ACTOR, args.name, args.role)
        print(f"user {user.username} is now {user.role.value}")
        return EXIT_OK

    return run_command(body)


def run_toggle(args: argparse.Namespace) -> int:
    """Disable or enable an account."""

    def body(ctx: ServiceContext) -> int:
        service = UserService(ctx)
        user = (service.enable if args.enable else service.disable)(CLI_ACTOR, args.name)
        print(f"user {user.username} is {'disabled' if user.disabled else 'enabled'}")
        return EXIT_OK

    return run_command(body)
