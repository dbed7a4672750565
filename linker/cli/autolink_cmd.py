"""`linker autolink backfill`: auto-link every unlinked profile, with a progress bar.

Ctrl-C once stops cleanly after the batch in flight (the next run resumes); twice aborts.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, TextIO

from linker.cli.common import CLI_ACTOR, EXIT_OK, print_table, run_command
from linker.core.autolink import Outcome
from linker.services.backfill import (
    MAX_CONCURRENCY,
    BackfillProgress,
    BackfillService,
    BackfillSummary,
    parse_shard,
)
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput
from linker.services.integrations import IntegrationService

BAR_WIDTH = 30


def register(subparsers: Any) -> None:
    """Add ``autolink`` with its ``backfill`` sub-command."""
    autolink = subparsers.add_parser("autolink", help="auto-linking")
    commands = autolink.add_subparsers(dest="autolink_command", metavar="COMMAND")
    commands.required = True
    backfill = commands.add_parser(
        "backfill", help="auto-link every unlinked profile",
        description="Run auto-linking over every profile not yet linked to the chosen "
                    "integrations (default: every active integration with auto-linking on and "
                    "at least one field). Safe to interrupt (Ctrl-C stops after the current "
                    "batch) and to re-run: it resumes, and nothing is linked twice.")
    backfill.add_argument("--integration", action="append", metavar="NAME", default=None,
                          help="only this integration (repeat for several)")
    backfill.add_argument("--dry-run", action="store_true",
                          help="send the requests and report what would happen; link nothing")
    backfill.add_argument("--concurrency", type=_concurrency, default=8, metavar="N",
                          help=f"requests in flight at once (1..{MAX_CONCURRENCY}, default 8)")
    backfill.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                          help="only profiles with crc32(id) %% N == I (for N workers)")
    backfill.set_defaults(func=run_backfill)


def _concurrency(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_CONCURRENCY}")
    return value


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(exc.fields["shard"]) from None


def integration_ids(ctx: ServiceContext, names: Sequence[str]) -> list[int]:
    """Ids of the named integrations (case-insensitive); NotFound names the unknown ones."""
    return IntegrationService(ctx).ids_named(CLI_ACTOR, names)


class ProgressBar:
    """A one-line text progress bar redrawn in place on a terminal (every 10 % otherwise)."""

    def __init__(self, stream: TextIO, *, dry_run: bool) -> None:
        self.stream = stream
        self.dry_run = dry_run
        self.tty = stream.isatty()
        self._last_tenth = -1

    def __call__(self, p: BackfillProgress) -> None:
        """Draw the state after a batch."""
        rate = p.done / p.elapsed_s if p.elapsed_s > 0 else 0.0
        filled = int(BAR_WIDTH * p.fraction)
        shown = ", ".join(f"{_label(k, self.dry_run)} {v}" for k, v in p.counts.items() if v)
        line = (f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {p.fraction:4.0%} "
                f"{p.done}/{p.total} profiles, {rate:.1f}/s" + (f" | {shown}" if shown else ""))
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            tenth = int(p.fraction * 10)
            if tenth == self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _label(outcome: str, dry_run: bool) -> str:
    if dry_run and outcome == Outcome.LINKED.value:
        return "would link"
    return outcome


@contextmanager
def stop_on_ctrl_c(cancel: threading.Event, stream: TextIO) -> Iterator[None]:
    """First Ctrl-C sets ``cancel`` (stop after the batch); the second aborts at once."""
    def handle(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        stream.write("\nstopping after the current batch (Ctrl-C again to abort now)...\n")
        stream.flush()

    try:
        previous = signal.signal(signal.SIGINT, handle)
    except ValueError:  # not the main thread: no signal handling
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def print_summary(summary: BackfillSummary) -> None:
    """The outcome table and the throughput, plus how to resume when stopped early."""
    what = "dry run of backfill" if summary.dry_run else "backfill"
    shard = f", shard {summary.shard[0]}/{summary.shard[1]}" if summary.shard else ""
    print(f"{what}: {', '.join(summary.integrations)}{shard}")
    rows = [(_label(k, summary.dry_run), v) for k, v in summary.counts.items()]
    print_table(["outcome", "attempts"], [*rows, ("total", summary.attempts)])
    print(f"{summary.done} of {summary.total} profiles in {summary.elapsed_s:.1f} s "
          f"({summary.profiles_per_second:.1f} profiles/s)"
          + (f"; {summary.resumed} done by an earlier interrupted run were skipped"
             if summary.resumed else ""))
    if summary.healed or summary.heal_failed:
        print(f"finished {summary.healed} earlier link(s) that had no pulled data"
              + (f"; {summary.heal_failed} still failed (retried next run and when the "
                 "profile is opened)" if summary.heal_failed else ""))
    if summary.lease_lost:
        print("stopped: another backfill took over this run's lease (this run had stalled)")
    if summary.dry_run:
        print("dry run: nothing was linked and no outcome was recorded (the exchanges were "
              "stored, marked 'backfill dry run')")
    if summary.cancelled:
        print(f"stopped early: run the same command again to resume from profile "
              f"{summary.done + 1} (progress key {summary.run_key})")


def run_backfill(args: argparse.Namespace) -> int:
    """Run the backfill with a progress bar on stderr and print the summary."""

    def body(ctx: ServiceContext) -> int:
        ids = integration_ids(ctx, args.integration) if args.integration else None
        cancel = threading.Event()
        bar = ProgressBar(sys.stderr, dry_run=args.dry_run)
        with stop_on_ctrl_c(cancel, sys.stderr):
            try:
                summary = BackfillService(ctx).run(
                    CLI_ACTOR, integration_ids=ids, dry_run=args.dry_run,
                    concurrency=args.concurrency, shard=args.shard, progress=bar,
                    cancel=cancel)
            finally:
                bar.close()
        print_summary(summary)
        return EXIT_OK

    return run_command(body)
