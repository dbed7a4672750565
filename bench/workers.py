"""Worker scale-out benchmark: one backfill split into chunk jobs, taken by 1, 2 and 4
`linker worker` processes on PostgreSQL, the shop adaptor in its own process.

Run: ``.venv/bin/python bench/workers.py --database-url postgresql+psycopg://...
[--size 3000] [--workers 1,2,4] [--chunk-size 250] [--concurrency 16] [--latency-ms 10]``

Every round gets a new PostgreSQL schema (dropped afterwards), bulk-inserts ``--size`` profiles
and the Shop integration (``bench/backfill.py``'s seed), starts N workers (``linker worker
--concurrency 1``: one chunk at a time each, ``--concurrency`` requests in flight per chunk),
waits until they are registered, then queues the run (``BackfillJobs.start``) and polls its
status until no chunk is queued or running. It prints profiles/s per worker count, the
speed-up over one worker, and the workers' CPU per profile (their utime + stime from /proc).
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from backfill import adaptor_process, profile_people, seed  # bench/backfill.py
from machine import describe_machine  # bench/machine.py
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from linker.adaptor import load_dataset
from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.demo import allow_demo_adaptors
from linker.services.backfill_jobs import BackfillJobs
from linker.services.context import ServiceContext
from linker.store.database import Database, display_url, normalize_url
from linker.store.secretbox import SecretBox, generate_key

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    """One measured round."""

    workers: int
    profiles: int
    elapsed_s: float
    cpu_ms: float
    chunks: dict[str, int]

    @property
    def rate(self) -> float:
        return self.profiles / self.elapsed_s


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def one_round(args: argparse.Namespace, workers: int, persons: list, url: str) -> Round:
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(normalize_url(args.database_url), poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db_url = make_url(normalize_url(args.database_url)).update_query_dict(
        {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="linker-bench-") as home:
            settings = Settings(home=Path(home), database_url=db_url, secret_key=generate_key())
            db = Database(db_url)
            db.upgrade()
            ctx = ServiceContext(settings=settings, db=db,
                                 secrets=SecretBox.from_settings(settings))
            seed(ctx, persons, url)
            env = {**os.environ, "LINKER_HOME": home, "LINKER_DATABASE_URL": db_url,
                   "LINKER_SECRET_KEY": settings.secret_key or "",
                   "LINKER_ALLOW_NETWORKS": "127.0.0.0/8,::1", "PYTHONPATH": str(ROOT)}
            for _ in range(workers):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "linker.cli.main", "worker", "--concurrency", "1",
                     "--queues", "backfill"], env=env, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL))
            jobs = BackfillJobs(ctx)
            deadline = time.monotonic() + 120
            while not _registered(db, workers):
                if time.monotonic() > deadline:
                    raise RuntimeError("the workers did not start")
                time.sleep(0.2)
            cpu0 = sum(cpu_s(p.pid) for p in procs)
            start = time.perf_counter()
            status = jobs.start(SYSTEM, concurrency=args.concurrency, chunk_size=args.chunk_size)
            while status.active:
                time.sleep(0.2)
                status = jobs.status(SYSTEM, status.run)
                sys.stderr.write(f"\r{workers} worker(s): {status.done}/{status.total}")
            elapsed = time.perf_counter() - start
            cpu = sum(cpu_s(p.pid) for p in procs) - cpu0
            sys.stderr.write("\n")
            db.dispose()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    return Round(workers, status.total, elapsed, cpu * 1000 / max(status.total, 1),
                 dict(status.chunks))


def _registered(db: Database, workers: int) -> bool:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar()
                   or 0) >= workers


def main() -> int:
    """Run the rounds and print the figures."""
    allow_demo_adaptors()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True,
                        help="a PostgreSQL database (each round uses a new schema in it)")
    parser.add_argument("--size", type=int, default=3000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--chunk-size", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=int, default=10)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(f"building the shop dataset at size {args.size}...", file=sys.stderr)
    persons = profile_people(load_dataset("shop", size=args.size), args.size)
    rounds: list[Round] = []
    with adaptor_process(args.size, args.latency_ms) as url:
        for n in counts:
            rounds.append(one_round(args, n, persons, url))
            print(f"{n} worker(s): {rounds[-1].rate:.0f} profiles/s", file=sys.stderr)
    base = rounds[0].rate
    print(f"machine: {describe_machine()}; load average {os.getloadavg()[0]:.1f}")
    print(f"database: {display_url(args.database_url)}; profiles: {args.size}; chunk size "
          f"{args.chunk_size}; {args.concurrency} requests in flight per chunk; adaptor in its "
          f"own process, latency {args.latency_ms} ms")
    for r in rounds:
        print(f"| {datetime.now(UTC):%Y-%m-%d} | {r.workers} | {r.profiles} | "
              f"**{r.rate:.0f}** | {r.rate / base:.2f}x | {r.elapsed_s:.1f} s | "
              f"{r.cpu_ms:.1f} ms | {r.chunks} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
