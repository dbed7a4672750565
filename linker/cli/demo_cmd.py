"""`linker demo`: reference adaptors, a seeded demo database and the dashboard, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from linker.cli.commands import help_of
from linker.cli.common import EXIT_OK, describe_error, error
from linker.config import Settings
from linker.demo import (
    DASHBOARD_PORT,
    DEMO_ACCOUNTS,
    DEMO_HOME,
    DEMO_INTEGRATIONS,
    DemoAdaptors,
    SeedReport,
    dashboard_url,
    demo_settings,
    open_demo_context,
    reset_demo,
    seed_demo,
    start_dashboard,
    stop_process,
    wait_for_dashboard,
)
from linker.demo_history import HISTORY_PROFILES, HISTORY_SEED, seed_history
from linker.services.errors import ServiceError
from linker.store.secretbox import SecretKeyError

_KEYS = tuple(i.key for i in DEMO_INTEGRATIONS)


def _adaptor_ports(text: str) -> dict[str, int]:
    """``auto`` (free ports) or one port per integration: ``shop,loyalty,travel,flaky``."""
    if text.strip().lower() == "auto":
        return dict.fromkeys(_KEYS, 0)
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(_KEYS) or not all(p.isdigit() and 0 <= int(p) < 65536 for p in parts):
        raise argparse.ArgumentTypeError(
            f"give {len(_KEYS)} ports separated by commas ({','.join(_KEYS)}), or 'auto'")
    return dict(zip(_KEYS, (int(p) for p in parts), strict=True))


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number 1-65535, got {text!r}")
    return int(text)


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    defaults = ",".join(str(i.default_port) for i in DEMO_INTEGRATIONS)
    demo = subparsers.add_parser(
        "demo", help=help_of("demo"),
        description="Start the reference adaptors (Shop, Loyalty, Travel and a flaky copy of "
                    "Shop) on loopback, seed the demo database (integrations, sign-in accounts, "
                    f"about {HISTORY_PROFILES + 50:,} profiles and a month of backdated history) "
                    "and run the dashboard until Ctrl-C. The "
                    f"demo keeps its data in its own folder ({DEMO_HOME}); seeding again is "
                    "harmless.")
    demo.add_argument("--port", type=_port, default=DASHBOARD_PORT,
                      help=f"dashboard port (default {DASHBOARD_PORT})")
    demo.add_argument("--home", type=Path, default=DEMO_HOME,
                      help=f"the demo's data folder (default {DEMO_HOME})")
    demo.add_argument("--adaptor-ports", type=_adaptor_ports, default=_adaptor_ports(defaults),
                      metavar="PORTS", help=f"adaptor ports {','.join(_KEYS)} (default "
                      f"{defaults}), or 'auto' for free ports")
    demo.add_argument("--reset", action="store_true",
                      help="delete the demo database first and start from an empty one")
    demo.add_argument("--seed", type=int, default=HISTORY_SEED,
                      help=f"seed of the generated history (default {HISTORY_SEED}); the same "
                           "seed writes the same data")
    mode = demo.add_mutually_exclusive_group()
    mode.add_argument("--no-ui", "--no-dashboard", dest="no_dashboard", action="store_true",
                      help="everything but the dashboard: serve the adaptors on the seeded "
                           "database (until Ctrl-C)")
    mode.add_argument("--seed-only", action="store_true",
                      help="seed the demo database, then stop the adaptors and exit")
    demo.set_defaults(func=run_demo)


class _Stop(Exception):
    """SIGTERM or SIGINT arrived: stop like on Ctrl-C."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


@contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGTERM and SIGINT stop the demo cleanly, even when the shell started it with SIGINT
    ignored (a background job of a script)."""
    try:
        previous = {sig: signal.signal(sig, _on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread (e.g. called from a test): leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def print_accounts() -> None:
    """The sign-in accounts of the demo and their passwords."""
    print("Sign in with one of these accounts (demo passwords, never use them elsewhere):")
    for account in DEMO_ACCOUNTS:
        print(f"  {account.username:<10} {account.password:<24} {account.role.value}")


def _print_seed(report: SeedReport, adaptors: DemoAdaptors) -> None:
    print(f"Seeded: {report.summary()}")
    print("Reference adaptors:")
    for integration in adaptors.integrations:
        extras = []
        if integration.username:
            extras.append(f"Basic auth {integration.username}")
        if integration.faults:
            extras.append("faults " + ", ".join(integration.faults))
        more = f" ({'; '.join(extras)})" if extras else ""
        print(f"  {integration.name:<13} {adaptors.urls[integration.key]}{more}")


def run_demo(args: argparse.Namespace) -> int:
    """Start the adaptors, seed, then run the dashboard (or wait) until interrupted."""
    settings = demo_settings(args.home)
    if args.reset:
        removed = reset_demo(settings.home)
        print(f"Reset the demo in {settings.home} ({len(removed)} files removed)")
    try:
        with _signals_stop(), DemoAdaptors(args.adaptor_ports) as adaptors:
            ctx = open_demo_context(settings)
            try:
                print(f"Seeding the demo database in {settings.home} ...", flush=True)
                started = time.perf_counter()
                report = seed_demo(ctx, adaptors.urls)
                history = seed_history(ctx.db, seed=args.seed)
                elapsed = time.perf_counter() - started
            finally:
                ctx.db.dispose()
            _print_seed(report, adaptors)
            print(f"History: {history.summary()}")
            print(f"Seeding took {elapsed:.1f} s", flush=True)
            if args.seed_only:
                print_accounts()
                return EXIT_OK
            if args.no_dashboard:
                print_accounts()
                print("Adaptors running without the dashboard; press Ctrl-C to stop.",
                      flush=True)
                signal.pause()
                return EXIT_OK
            return _run_dashboard(settings, args.port)
    except (KeyboardInterrupt, _Stop):
        print("\nDemo stopped.")
        return EXIT_OK
    except (RuntimeError, ServiceError, SecretKeyError) as exc:
        return error(describe_error(exc))


def _run_dashboard(settings: Settings, port: int) -> int:
    process = start_dashboard(settings, port)
    try:
        url = dashboard_url(port)
        wait_for_dashboard(url, process)
        print(f"\nThe dashboard is ready: {url}")
        print_accounts()
        print("Press Ctrl-C to stop the dashboard and the adaptors.", flush=True)
        code = process.wait()
        if code != 0:
            return error(f"the dashboard stopped with exit code {code}")
        return EXIT_OK
    finally:
        # On Ctrl-C the terminal interrupts the dashboard too; stop it if it still runs.
        stop_process(process)
