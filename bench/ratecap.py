"""Rate-cap benchmark: three backfill processes on one PostgreSQL, with and without caps.

Run: ``.venv/bin/python bench/ratecap.py [--database-url URL] [--profiles 300]
[--latency-ms 20] [--workers 3] [--concurrency 8]``

``--database-url`` (default: ``LINKER_TEST_POSTGRES_URL``) is a PostgreSQL server; each
scenario runs in a new schema of it, dropped afterwards. The shop reference adaptor runs in its
own process (``linker adaptor serve``) with ``latency:<ms>``. Every scenario stores one
integration with the scenario's caps and ``--profiles`` profiles (two of three with a shop
email, so they link and get a DETAILED lookup too), then starts ``--workers`` processes of
``linker autolink backfill --shard I/N`` at once. From the stored exchanges (start = when the
request was signed, after the gate; end = start + elapsed) it prints requests per second, the
most in flight at once and the most starts in one second.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from machine import describe_machine  # bench/machine.py (the script's folder)
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from linker.adaptor import load_dataset
from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.services.context import ServiceContext
from linker.services.integrations import AttributeSpec, IntegrationService, IntegrationSpec
from linker.store.database import Database, normalize_url
from linker.store.models import Customer, CustomerEmail, ExchangeRecord
from linker.store.secretbox import SecretBox, generate_key

ROOT = Path(__file__).resolve().parents[1]
SIGNING_KEY = "bench-ratecap-signing-key"
SCENARIOS: list[tuple[str, int | None, float | None]] = [
    ("no cap", None, None),
    ("4 at once", 4, None),
    ("10 per second", None, 10.0),
    ("4 at once, 10 per second", 4, 10.0),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def adaptor_process(latency_ms: int) -> Iterator[str]:
    """The shop adaptor in its own process; its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "linker.cli.main", "adaptor", "serve", "--dataset", "shop",
         "--port", str(port), "--signing-key", SIGNING_KEY, "--fault", f"latency:{latency_ms}"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the adaptor process did not start") from None
                time.sleep(0.1)  # a benchmark script waiting for a server, not a test
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def schema(base_url: str) -> Iterator[str]:
    """A URL on a new schema of ``base_url`` (dropped afterwards)."""
    name = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(normalize_url(base_url), poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        url = make_url(normalize_url(base_url)).update_query_dict(
            {"options": f"-csearch_path={name}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


def seed(ctx: ServiceContext, url: str, profiles: int, concurrent: int | None,
         per_second: float | None) -> int:
    shop = load_dataset("shop")
    duplicates = shop.duplicate_emails()
    emails = [r.emails[0] for r in shop.records if r.duplicate_of is None and r.emails
              and not {e.lower() for e in r.emails} & duplicates]
    integration = IntegrationService(ctx).create(SYSTEM, IntegrationSpec(
        name="Shop", url=url, signing_key=SIGNING_KEY, autolink_enabled=True,
        autolink_fields=("email",), search_query_attributes=(AttributeSpec("email", "Email"),),
        max_concurrent_requests=concurrent, max_requests_per_second=per_second))
    with ctx.db.session() as s:
        for i in range(profiles):
            email = emails[i % len(emails)] if i % 3 and i < len(emails) else \
                f"nobody{i}@nowhere.example"
            s.add(Customer(id=f"p{i:05d}", name=f"Profile {i}"))
            s.add(CustomerEmail(customer_id=f"p{i:05d}", original=email,
                                normalized=email.lower(), position=0))
    return integration.id


def run_workers(settings: Settings, workers: int, concurrency: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LINKER_HOME": str(settings.home),
           "LINKER_DATABASE_URL": settings.database_url,
           "LINKER_SECRET_KEY": settings.secret_key or "",
           "LINKER_ALLOW_NETWORKS": "127.0.0.0/8,::1"}  # the adaptor is on loopback
    start = time.perf_counter()
    processes = [subprocess.Popen(
        [sys.executable, "-m", "linker.cli.main", "autolink", "backfill", "--shard",
         f"{i}/{workers}", "--concurrency", str(concurrency)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in range(workers)]
    for process in processes:
        _, err = process.communicate(timeout=900)
        if process.returncode != 0:
            raise RuntimeError(f"a backfill process failed: {err}")
    return time.perf_counter() - start


def measure(ctx: ServiceContext) -> tuple[int, int, float, int, int]:
    """Requests, failed ones, requests/s (first to last start), most in flight, most starts
    in 1 s."""
    with ctx.db.session(readonly=True) as s:
        rows = s.execute(select(ExchangeRecord.started_at, ExchangeRecord.elapsed_ms,
                                ExchangeRecord.error_kind)).all()
    failed = sum(1 for r in rows if r.error_kind)
    starts = sorted(r.started_at.timestamp() for r in rows)
    span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    events = sorted([(t, 1) for t in starts] + [
        (r.started_at.timestamp() + r.elapsed_ms / 1000.0, -1) for r in rows],
        key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    busiest = first = 0
    for last, moment in enumerate(starts):
        while moment - starts[first] >= 1.0:
            first += 1
        busiest = max(busiest, last - first + 1)
    return len(starts), failed, (len(starts) - 1) / span if span else 0.0, most, busiest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("LINKER_TEST_POSTGRES_URL"))
    parser.add_argument("--profiles", type=int, default=300)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url (PostgreSQL) or set LINKER_TEST_POSTGRES_URL")
    print(describe_machine())
    print(f"{args.workers} backfill processes × concurrency {args.concurrency}, "
          f"{args.profiles} profiles, adaptor latency {args.latency_ms} ms (own process)")
    print("| caps | requests (failed) | requests/s | most in flight | most starts in 1 s "
          "| wall |")
    print("|---|---|---|---|---|---|")
    with adaptor_process(args.latency_ms) as url:
        for label, concurrent, per_second in SCENARIOS:
            with schema(args.database_url) as db_url:
                home = Path(os.environ.get("TMPDIR", "/tmp")) / f"linker-bench-{os.getpid()}"
                home.mkdir(exist_ok=True)
                settings = Settings(home=home, database_url=db_url, secret_key=generate_key())
                db = Database(db_url)
                db.upgrade()
                ctx = ServiceContext(settings=settings, db=db,
                                     secrets=SecretBox.from_settings(settings))
                seed(ctx, url, args.profiles, concurrent, per_second)
                wall = run_workers(settings, args.workers, args.concurrency)
                count, failed, rate, most, busiest = measure(ctx)
                db.dispose()
            print(f"| {label} | {count} ({failed}) | {rate:.1f} | {most} | {busiest} "
                  f"| {wall:.1f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
