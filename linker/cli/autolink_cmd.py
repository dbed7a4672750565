"""`linker autolink backfill`: auto-link every unlinked profile, with a progress bar.

Ctrl-C once stops cleanly after the batches in flight (the next run resumes); twice aborts.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from linker.cli.commands import help_of
from linker.cli.common import (
    CLI_ACTOR,
    EXIT_OK,
    EXIT_USAGE,
    error,
    print_table,
    run_command,
    whole_number,
)
from linker.core.outcomes import outcome_label
from linker.services.backfill import (
    MAX_CONCURRENCY,
    BackfillPhase,
    BackfillProgress,
    BackfillService,
    BackfillSummary,
    parse_shard,
)
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput
from linker.services.integrations import IntegrationService

if TYPE_CHECKING:
    from linker.services.backfill_jobs import BackfillJobs, RunStatus
    from linker.services.backfill_live import LiveRun

BAR_WIDTH = 30


def register(subparsers: Any) -> None:
    """Add ``autolink`` with its ``backfill`` sub-command."""
    autolink = subparsers.add_parser("autolink", help=help_of("autolink"))
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
    backfill.add_argument("--concurrency", type=whole_number(1, MAX_CONCURRENCY), default=8,
                          metavar="N",
                          help=f"requests in flight at once (1..{MAX_CONCURRENCY}, default 8)")
    backfill.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                          help="only the chunks of profiles with crc32(id) %% N == I, in "
                               "this process: start N processes, one per shard (PostgreSQL: "
                               "prefer --via-workers)")
    backfill.add_argument("--via-workers", action="store_true",
                          help="split the run into chunk jobs that `linker worker` processes "
                               "take (PostgreSQL); on SQLite the chunks run in this process")
    backfill.add_argument("--chunk-size", type=_chunk_size, default=None, metavar="N",
                          help="profiles per chunk job with --via-workers or --shard "
                               "(default 500)")
    backfill.add_argument("--detach", action="store_true",
                          help="with --via-workers: queue the jobs and return at once "
                               "(follow with `linker autolink status RUN`)")
    backfill.set_defaults(func=run_backfill)
    status = commands.add_parser(
        "status", help="the backfills running in processes, and where a run of chunk jobs is")
    status.add_argument("run", nargs="?", default=None,
                        help="the run id (default: the newest run)")
    status.set_defaults(func=run_status)
    cancel = commands.add_parser(
        "cancel", help="cancel a backfill run: its chunk jobs, or the process running it "
                       "(it stops after its batch; a new run resumes)")
    cancel.add_argument("run", help="the run id")
    cancel.set_defaults(func=run_cancel)


def _chunk_size(text: str) -> int:
    from linker.services.backfill_jobs import MAX_CHUNK_SIZE

    return whole_number(1, MAX_CHUNK_SIZE)(text)


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(exc.fields["shard"]) from None


def integration_ids(ctx: ServiceContext, names: Sequence[str]) -> list[int]:
    """Ids of the named integrations (case-insensitive); NotFound names the unknown ones."""
    return IntegrationService(ctx).ids_named(CLI_ACTOR, names)


class ProgressBar:
    """A one-line text progress bar redrawn in place on a terminal (every 10 % otherwise).

    Before the first batch, ``phase`` shows the run's steps (healing, finding the profiles,
    with the time each has taken so far), then the bar at 0 of N."""

    def __init__(self, stream: TextIO, *, dry_run: bool) -> None:
        self.stream = stream
        self.dry_run = dry_run
        self.tty = stream.isatty()
        self._last_tenth = -1
        self._last_step: tuple[BackfillPhase, int] | None = None

    def __call__(self, p: BackfillProgress) -> None:
        """Draw the state after a batch."""
        self._draw(p)

    def phase(self, p: BackfillProgress) -> None:
        """Show a step before the first batch (on a terminal each report; otherwise when the
        step changes and at every tenth of its items), then the bar once the profiles are
        known (``TRYING``)."""
        if p.phase is BackfillPhase.TRYING:
            self._draw(p)
            return
        step = (p.phase, int(p.fraction * 10) if p.total else -1)
        if self.tty:
            self.stream.write("\r\x1b[2K" + p.step_text())
        elif step != self._last_step:
            self.stream.write(p.step_text() + "\n")
        self._last_step = step
        self.stream.flush()

    def _draw(self, p: BackfillProgress) -> None:
        rate = p.done / p.elapsed_s if p.elapsed_s > 0 else 0.0
        filled = int(BAR_WIDTH * p.fraction)
        shown = ", ".join(f"{outcome_label(k, dry_run=self.dry_run)} {v}"
                          for k, v in p.counts.items() if v)
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


@contextmanager
def stop_on_ctrl_c(cancel: threading.Event, stream: TextIO) -> Iterator[None]:
    """First Ctrl-C sets ``cancel`` (stop after the batch); the second aborts at once."""
    def handle(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        stream.write("\nstopping after the batches in flight (Ctrl-C again to abort now)...\n")
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
    print(f"{what}: {', '.join(summary.integrations)}")
    rows = [(outcome_label(k, dry_run=summary.dry_run), v) for k, v in summary.counts.items()]
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
    if args.via_workers and (args.dry_run or args.shard):
        print("error: --via-workers cannot be combined with --dry-run or --shard (a dry run "
              "and a shard run in this process)", file=sys.stderr)
        return EXIT_USAGE
    if args.shard and args.dry_run:
        print("error: --dry-run goes over every profile in one process; leave out --shard",
              file=sys.stderr)
        return EXIT_USAGE
    if args.detach and not args.via_workers:
        print("error: --detach goes with --via-workers", file=sys.stderr)
        return EXIT_USAGE
    if args.chunk_size and not (args.via_workers or args.shard):
        print("error: --chunk-size goes with --via-workers or --shard", file=sys.stderr)
        return EXIT_USAGE

    def body(ctx: ServiceContext) -> int:
        ids = integration_ids(ctx, args.integration) if args.integration else None
        if args.via_workers:
            return backfill_via_jobs(ctx, args, ids)
        if args.shard:
            return backfill_shard(ctx, args, ids)
        cancel = threading.Event()
        bar = ProgressBar(sys.stderr, dry_run=args.dry_run)
        with stop_on_ctrl_c(cancel, sys.stderr):
            try:
                summary = BackfillService(ctx).run(
                    CLI_ACTOR, integration_ids=ids, dry_run=args.dry_run,
                    concurrency=args.concurrency, progress=bar, cancel=cancel,
                    phases=bar.phase)
            finally:
                bar.close()
        print_summary(summary)
        return EXIT_OK

    return run_command(body)


# -- backfills split into chunk jobs ----------------------------------------------------------

POLL_S = 1.0


def backfill_via_jobs(ctx: ServiceContext, args: argparse.Namespace,
                      ids: list[int] | None) -> int:
    """Queue the run's chunk jobs (PostgreSQL) and follow them, or run the same chunks here
    (SQLite). Ctrl-C while following cancels the run (chunks stop after their batch)."""
    from linker.services.backfill_jobs import CHUNK_SIZE, BackfillJobs

    jobs = BackfillJobs(ctx)
    size = args.chunk_size or CHUNK_SIZE
    cancel = threading.Event()
    bar = ProgressBar(sys.stderr, dry_run=False)
    if ctx.db.is_sqlite:
        print("SQLite has no job queue: the chunk jobs run in this process", file=sys.stderr)
        return _run_inline(jobs, args, ids)
    status = jobs.start(CLI_ACTOR, integration_ids=ids, concurrency=args.concurrency,
                        chunk_size=size)
    chunks = sum(status.chunks.values())
    print(f"queued backfill run {status.run}: {chunks} chunk job(s), {status.total} "
          f"profile(s) of {', '.join(status.integrations) or 'no integration'}", flush=True)
    if chunks and not jobs.workers_present():
        print("note: no worker is running; start one with `linker worker` (jobs wait in the "
              "queue until then)", file=sys.stderr, flush=True)
    if args.detach or not chunks:
        print(f"follow it with `linker autolink status {status.run}`")
        return EXIT_OK
    with stop_on_ctrl_c(cancel, sys.stderr):
        try:
            status = follow(jobs, status.run, bar, cancel)
        finally:
            bar.close()
    print_run(status)
    return EXIT_OK


def backfill_shard(ctx: ServiceContext, args: argparse.Namespace, ids: list[int] | None
                   ) -> int:
    """Run the chunks of one shard in this process (the other shards run in other
    processes, side by side); Ctrl-C stops after the batches in flight."""
    from linker.services.backfill_jobs import BackfillJobs

    return _run_inline(BackfillJobs(ctx), args, ids, args.shard)


def _run_inline(jobs: BackfillJobs, args: argparse.Namespace, ids: list[int] | None,
                shard: tuple[int, int] | None = None) -> int:
    """The chunks (of ``shard``) one after another here, with a progress bar; the summary."""
    from linker.services.backfill_jobs import CHUNK_SIZE

    cancel = threading.Event()
    bar = ProgressBar(sys.stderr, dry_run=False)
    with stop_on_ctrl_c(cancel, sys.stderr):
        try:
            status = jobs.run_inline(CLI_ACTOR, integration_ids=ids,
                                     concurrency=args.concurrency,
                                     chunk_size=args.chunk_size or CHUNK_SIZE, progress=bar,
                                     cancel=cancel, shard=shard)
        finally:
            bar.close()
    if shard is not None:
        print(f"shard {shard[0]}/{shard[1]}: the profiles with crc32(id) % {shard[1]} == "
              f"{shard[0]}")
    print_run(status)
    return EXIT_OK


def follow(jobs: BackfillJobs, run: str, bar: ProgressBar, cancel: threading.Event
           ) -> RunStatus:
    """Redraw the run's progress until no chunk is queued or running; when ``cancel`` is set,
    cancel the run once and keep following until its chunks have stopped."""
    told = False
    pause = threading.Event()  # never set: a wait that Ctrl-C cannot cut short
    while True:
        status = jobs.status(CLI_ACTOR, run)
        bar(status.progress())
        if not status.active:
            return status
        if not cancel.is_set():
            cancel.wait(POLL_S)
            continue
        if not told:
            jobs.cancel(CLI_ACTOR, run)
            told = True
        pause.wait(POLL_S)


def print_run(status: RunStatus) -> None:
    """The outcome table of a run of chunk jobs, its chunks per status, and what next."""
    print(f"backfill run {status.run}: {', '.join(status.integrations) or 'nothing to do'}")
    rows = [(k, v) for k, v in status.counts.items()]
    print_table(["outcome", "attempts"], [*rows, ("total", sum(status.counts.values()))])
    chunks = ", ".join(f"{k} {v}" for k, v in sorted(status.chunks.items()))
    print(f"{status.done} of {status.total} profiles; chunk jobs: {chunks or 'none'}")
    if status.active:
        print("still running: `linker autolink status` follows it, `linker autolink cancel "
              f"{status.run}` stops it")
    elif status.cancelled or status.chunks.get("failed"):
        print("stopped early: run the same backfill again to resume (done profiles are "
              "skipped)")


def live_counts(run: LiveRun) -> str:
    """A live run's outcomes so far, as the progress bar shows them (``-`` before any)."""
    shown = ", ".join(f"{outcome_label(k, dry_run=run.dry_run)} {v}"
                      for k, v in run.counts.items() if v)
    return shown or "-"


def print_live(runs: Sequence[LiveRun]) -> None:
    """The backfills running in processes of the database, one a line."""
    print("running in a process:")
    print_table(["run", "what", "integrations", "by", "since (UTC)", "profiles", "outcomes",
                 "state"], [
        (r.run, r.what, ", ".join(r.integrations), r.holder, f"{r.started_at:%Y-%m-%d %H:%M:%S}",
         f"{r.done}/{r.total}", live_counts(r), "stopping" if r.cancel_requested else "running")
        for r in runs])
    print("`linker autolink cancel RUN` stops one after its batches in flight")


def run_status(args: argparse.Namespace) -> int:
    """Print the backfills running in processes and where a run of chunk jobs is."""

    def body(ctx: ServiceContext) -> int:
        from linker.services.backfill_jobs import BackfillJobs

        jobs = BackfillJobs(ctx)
        live = jobs.running(CLI_ACTOR)
        if args.run is not None:
            mine = [r for r in live if r.run == args.run]
            if mine:
                print_live(mine)
                return EXIT_OK
            if ctx.db.is_sqlite:
                return error(f"no backfill run {args.run!r} is running; `linker autolink "
                             "status` lists those that are")
        if live and args.run is None:
            print_live(live)
        run = args.run or jobs.latest_run(CLI_ACTOR)
        if run is None:
            if live:
                return EXIT_OK
            return error("no backfill is running in a process and no run of chunk jobs was "
                         "queued on this database")
        status = jobs.status(CLI_ACTOR, run)
        if not status.chunks:
            return error(f"no backfill run {run!r}; `linker autolink status` shows the newest")
        print_run(status)
        return EXIT_OK

    return run_command(body)


def run_cancel(args: argparse.Namespace) -> int:
    """Cancel a backfill run: its chunk jobs, or the process running it."""

    def body(ctx: ServiceContext) -> int:
        from linker.services.backfill_jobs import BackfillJobs

        told = BackfillJobs(ctx).cancel(CLI_ACTOR, args.run)
        if not told:
            return error(f"no backfill run {args.run!r} is queued or running; `linker "
                         "autolink status` lists them")
        print(f"cancelled backfill run {args.run}: {told} chunk job(s) or process(es) were "
              "told to stop (running ones stop after their batch; a new run resumes)")
        return EXIT_OK

    return run_command(body)
