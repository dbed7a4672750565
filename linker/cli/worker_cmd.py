"""`linker worker`: a Procrastinate worker taking Linker's background jobs (PostgreSQL).

Run one or more on any machine that reaches the database; they share the queued jobs
(backfill chunks, conformance probes, retention). SQLite has no job queue: there the work
runs in the process that starts it (`linker probe run-due` for probes). Procrastinate is
imported only when the command runs, so ``linker --help`` stays light.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
from typing import Any

from linker.cli.commands import help_of
from linker.cli.common import EXIT_OK, error, run_command, whole_number
from linker.services.context import ServiceContext

DEFAULT_CONCURRENCY = 2
MAX_CONCURRENCY = 64


def register(subparsers: Any) -> None:
    """Add ``worker``."""
    worker = subparsers.add_parser(
        "worker", help=help_of("worker"),
        description="Start a worker that takes Linker's background jobs (backfill chunks, "
                    "conformance probes, retention) from the configured PostgreSQL database. "
                    "Start as many as you like, on any machine that reaches the database. "
                    "Stop with Ctrl-C or SIGTERM: running jobs stop after their batch and are "
                    "retried by another worker.")
    worker.add_argument("--concurrency", type=whole_number(1, MAX_CONCURRENCY),
                        default=DEFAULT_CONCURRENCY,
                        metavar="N", help="jobs this worker runs at once (1..64, default 2)")
    worker.add_argument("--queues", default="", metavar="Q1,Q2",
                        help="only these queues (backfill, maintenance, probes; default: all)")
    worker.add_argument("--name", default=None, help="worker name in the logs")
    worker.add_argument("--stalled-after", type=float, default=30.0, metavar="SECONDS",
                        help="a worker silent this long is taken for dead and its jobs are "
                             "retried (default 30; heartbeats every third of it)")
    worker.add_argument("--shutdown-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="on stop, let running jobs finish this long before asking them "
                             "to stop after their batch (default 10)")
    worker.set_defaults(func=run_worker)


def queue_names(text: str) -> list[str] | None:
    """``"a,b"`` → ``["a", "b"]``; empty → None (every queue). Raises ValueError naming an
    unknown queue."""
    from linker.services.jobs import QUEUES

    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in QUEUES]
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; the queues are "
                         f"{', '.join(QUEUES)}")
    return names or None


def run_worker(args: argparse.Namespace) -> int:
    """Run the worker until it is stopped."""
    try:
        queues = queue_names(args.queues)
    except ValueError as exc:
        return error(str(exc))
    if not args.stalled_after > 0:
        return error("--stalled-after must be more than 0 seconds")

    def body(ctx: ServiceContext) -> int:
        if ctx.db.is_sqlite:
            return error("the database is SQLite, which has no job queue: backfills run in "
                         "the process that starts them (CLI or dashboard). Set "
                         "LINKER_DATABASE_URL to a PostgreSQL database to use workers.")
        from linker.services.jobs import build_app

        logging.basicConfig(level=logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        name = args.name or f"{socket.gethostname()}:{os.getpid()}"
        app = build_app(ctx, stalled_after_s=args.stalled_after,
                        pool_size=args.concurrency + 3)
        print(f"worker {name}: taking jobs from {', '.join(queues or ['every queue'])} "
              f"({args.concurrency} at once); Ctrl-C stops", flush=True)

        async def work() -> None:
            options: dict[str, Any] = {} if queues is None else {"queues": queues}
            async with app.open_async():
                await app.run_worker_async(
                    concurrency=args.concurrency, name=name,
                    update_heartbeat_interval=args.stalled_after / 3,
                    stalled_worker_timeout=args.stalled_after,
                    shutdown_graceful_timeout=args.shutdown_timeout, delete_jobs="never",
                    **options)

        asyncio.run(work())
        print(f"worker {name}: stopped", flush=True)
        return EXIT_OK

    return run_command(body)
