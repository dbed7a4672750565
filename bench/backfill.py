"""Backfill benchmark: auto-link 10,000 profiles against the shop adaptor over loopback.

Run: ``.venv/bin/python bench/backfill.py [--size 10000] [--concurrency 32] [--latency-ms 10]
[--rounds 3] [--bound-size N] [--in-process-adaptor] [--database-url URL]``

1. Builds the shop dataset at ``--size`` records and serves it with the reference adaptor in
   its OWN process (uvicorn on a loopback socket the benchmark binds and hands over) with
   ``latency:<ms>`` added to every answer. ``--in-process-adaptor`` is the older variant: the
   adaptor in a thread of this process, sharing its interpreter lock (a note, not the figure).
2. Every round bulk-inserts ``--size`` profiles into a fresh database (SQLite in a temporary
   directory by default; ``--database-url`` is a PostgreSQL database whose public schema is
   dropped each round): one per person of the dataset (personal email + MOBILE phone, so most
   link by email, some only by phone), topped up with people who are in no dataset.
3. HTTP-only bounds: the same auto-link requests through the lookup client with the same
   concurrency and event loop (``run_sync``'s), no database work (``--bound-size N``: the
   first N of them only); then the backfill's whole traffic the same way (each search that
   finds one record followed by its DETAILED lookup), the bound a backfill that sends both can
   reach.
4. The backfill itself (``BackfillService.run``): auto-link request, decision, link, outcome,
   then the DETAILED lookup and its application for every new link, all stored.

Each round prints profiles/second for both and Linker's own CPU per profile (this process's
CPU time, all threads, over the backfill / profiles; the adaptor's CPU is not in it). The
medians over ``--rounds`` and a line ready for docs/benchmarks.md come last. To profile, run
the script under ``py-spy record -f raw -o out.txt -- python bench/backfill.py ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from machine import describe_machine  # bench/machine.py (the script's folder)
from sqlalchemy import insert

from linker.adaptor import BackgroundServer, Dataset, Person, create_app, load_dataset, people
from linker.adaptor.faults import parse_fault
from linker.config import Settings
from linker.contract import RequestKind, autolink_request, detailed_request
from linker.core.permissions import SYSTEM
from linker.demo import allow_demo_adaptors
from linker.lookup import AdaptorTarget, LookupClient, Trigger, run_sync
from linker.services.backfill import BackfillProgress, BackfillService
from linker.services.context import ServiceContext
from linker.store.database import Database, display_url
from linker.store.models import Customer, CustomerEmail, CustomerPhone, Integration
from linker.store.secretbox import SecretBox, generate_key

SIGNING_KEY = "bench-signing-key-0001"


def profile_people(dataset: Dataset, size: int) -> list[Person]:
    """``size`` distinct people: the dataset's members first, then people in no dataset."""
    population = people(dataset)
    members = {r.person_index for r in dataset.records}
    chosen = [population[i] for i in sorted(members)]
    chosen += [p for p in population if p.index not in members]
    return chosen[:size]


def _rows(persons: list[Person]) -> Iterator[tuple[dict[str, Any], dict[str, Any],
                                                   dict[str, Any]]]:
    now = datetime.now(UTC)
    for i, person in enumerate(persons):
        cid = f"b{i:06d}"
        yield (
            {"id": cid, "name": person.name, "address": person.address,
             "custom_attributes": {}, "created_at": now, "updated_at": now},
            {"customer_id": cid, "original": person.email, "normalized": person.email.lower(),
             "position": 0, "source": ""},
            {"customer_id": cid, "original": person.mobile, "e164": person.mobile,
             "type": "MOBILE", "mobile_key": person.mobile, "position": 0, "source": ""},
        )


def seed(ctx: ServiceContext, persons: list[Person], url: str) -> None:
    """Bulk-insert the profiles and the Shop integration (auto-link on email and mobile)."""
    customers, emails, phones = zip(*_rows(persons), strict=True)
    with ctx.db.session() as session:
        session.execute(insert(Customer), list(customers))
        session.execute(insert(CustomerEmail), list(emails))
        session.execute(insert(CustomerPhone), list(phones))
        session.add(Integration(
            name="Shop", name_key="shop", url=url,
            signing_key_enc=ctx.secrets.encrypt(SIGNING_KEY), headers=[],
            search_query_attributes=[], search_results_attributes=[],
            autolink_enabled=True, autolink_fields=["email", "mobile"], timeout_s=15.0))


async def http_only(client: LookupClient, target: AdaptorTarget, persons: list[Person],
                    concurrency: int, *, detailed: bool = False) -> tuple[float, int]:
    """The same auto-link requests with the same concurrency, no database: seconds, requests.

    With ``detailed``, every search that finds exactly one record is followed by the DETAILED
    lookup the backfill sends for a new link (the backfill's whole traffic, not only its
    searches). ``concurrency`` workers share one connection pool and take the next profile as
    soon as their previous one is answered.
    """
    pending: Iterator[tuple[int, Person]] = iter(enumerate(persons))
    sent = 0

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal sent
        for i, p in pending:
            customer_id = f"b{i:06d}"
            exchange = await client.lookup(
                target, autolink_request(customer_id, p.name, [p.email], [p.mobile]),
                kind=RequestKind.AUTOLINK, trigger=Trigger.BACKFILL, client=http)
            sent += 1
            if detailed and exchange.error is None and len(exchange.results) == 1:
                record = exchange.results[0].external_customer_id
                request = detailed_request(customer_id, record, name=p.name, emails=[p.email],
                                           phones=[p.mobile])
                await client.lookup(target, request, kind=RequestKind.DETAILED,
                                    trigger=Trigger.BACKFILL, client=http)
                sent += 1

    start = time.perf_counter()
    async with client.http_client() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return time.perf_counter() - start, sent


def progress_bar(p: BackfillProgress) -> None:
    """A one-line progress display on stderr."""
    rate = p.done / p.elapsed_s if p.elapsed_s else 0.0
    sys.stderr.write(f"\r  backfill {p.done}/{p.total} profiles, {rate:.0f}/s")
    sys.stderr.flush()


def serve_adaptor(fd: int, size: int, latency_ms: int) -> None:
    """Child process: serve the shop adaptor on the inherited listening socket ``fd``."""
    import socket

    import uvicorn

    dataset = load_dataset("shop", size=size)
    app = create_app(dataset, signing_key=SIGNING_KEY,
                     faults=[parse_fault(f"latency:{latency_ms}")])
    sock = socket.socket(fileno=fd)
    parent = os.getppid()

    def orphaned() -> None:  # the benchmark was killed: do not outlive it
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


@contextmanager
def adaptor_process(size: int, latency_ms: int) -> Iterator[str]:
    """The reference adaptor in its own process on a loopback port; yields its URL.

    The socket is bound and listening before the child starts (connections wait in the
    backlog), and the child is stopped (terminate, then kill) on exit.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-adaptor-fd", str(sock.fileno()),
         "--size", str(size), "--latency-ms", str(latency_ms)],
        pass_fds=[sock.fileno()])
    try:
        deadline = time.monotonic() + 120 + size / 100  # the child builds the dataset too
        while True:  # the dataset takes a few seconds to build; poll until it answers
            try:
                httpx.get(url, timeout=5.0, trust_env=False)
                break
            except httpx.HTTPError:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the adaptor process did not start") from None
        yield url
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        sock.close()


@contextmanager
def adaptor_in_process(size: int, latency_ms: int) -> Iterator[str]:
    """The older variant: the adaptor in a thread of this process (shares its GIL)."""
    dataset = load_dataset("shop", size=size)
    app = create_app(dataset, signing_key=SIGNING_KEY,
                     faults=[parse_fault(f"latency:{latency_ms}")])
    with BackgroundServer(app) as server:
        yield server.url


@dataclass
class Round:
    """One measured round: the HTTP-only bound and the backfill, same adaptor."""

    http_rate: float
    """Profiles/s of the searches alone (the issue's HTTP-only bound)."""
    http_cpu_ms: float
    traffic_rate: float
    """Profiles/s of the backfill's whole traffic (search + DETAILED for each single hit)."""
    backfill_rate: float
    backfill_cpu_ms: float
    elapsed_s: float
    counts: dict[str, int]


def one_round(args: argparse.Namespace, persons: list[Person], url: str) -> Round:
    """Fresh database, seed, HTTP-only bound, backfill; rates and this process's CPU."""
    with tempfile.TemporaryDirectory(prefix="linker-bench-") as home:
        db_url = args.database_url or f"sqlite:///{Path(home) / 'linker.db'}"
        settings = Settings(home=Path(home), database_url=db_url, secret_key=generate_key())
        db = Database(db_url)
        if args.database_url:
            reset_postgres(db)
        db.upgrade()
        ctx = ServiceContext(settings=settings, db=db, secrets=SecretBox.from_settings(settings))
        seed(ctx, persons, url)
        target = AdaptorTarget(url, name="Shop", signing_key=SIGNING_KEY, timeout_s=15.0)
        sample = persons[:args.bound_size] if args.bound_size else persons
        cpu0 = time.process_time()
        http_s, sent = run_sync(lambda: http_only(LookupClient(), target, sample,
                                                  args.concurrency))
        http_cpu_ms = (time.process_time() - cpu0) * 1000 / sent
        traffic_s, _ = run_sync(lambda: http_only(LookupClient(), target, sample,
                                                  args.concurrency, detailed=True))
        cpu1 = time.process_time()
        summary = BackfillService(ctx).run(SYSTEM, concurrency=args.concurrency,
                                           batch_size=args.batch_size or None,
                                           progress=progress_bar)
        cpu2 = time.process_time()
        sys.stderr.write("\n")
        db.dispose()
    return Round(http_rate=len(sample) / http_s, http_cpu_ms=http_cpu_ms,
                 traffic_rate=len(sample) / traffic_s,
                 backfill_rate=summary.profiles_per_second,
                 backfill_cpu_ms=(cpu2 - cpu1) * 1000 / max(summary.done, 1),
                 elapsed_s=summary.elapsed_s, counts=dict(summary.counts))


def reset_postgres(db: Database) -> None:
    """Drop and recreate the public schema so every round starts empty (PostgreSQL only)."""
    from sqlalchemy import text

    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


def main() -> int:
    """Run the benchmark and print the figures."""
    allow_demo_adaptors()  # the benchmark's adaptors listen on loopback
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="repeat; medians are reported")
    parser.add_argument("--bound-size", type=int, default=0,
                        help="measure the HTTP-only bound on the first N profiles only "
                             "(default: all; for very large runs)")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="profiles per backfill batch (default: the service's own)")
    parser.add_argument("--in-process-adaptor", action="store_true",
                        help="the older variant: adaptor in a thread of this process")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL database whose public schema may be DROPPED each "
                             "round (default: SQLite in a temporary directory)")
    parser.add_argument("--serve-adaptor-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_adaptor_fd is not None:
        serve_adaptor(args.serve_adaptor_fd, args.size, args.latency_ms)
        return 0

    print(f"building the shop dataset at size {args.size}...", file=sys.stderr)
    dataset = load_dataset("shop", size=args.size)
    persons = profile_people(dataset, args.size)
    adaptor = adaptor_in_process if args.in_process_adaptor else adaptor_process
    rounds: list[Round] = []
    with adaptor(args.size, args.latency_ms) as url:
        for i in range(args.rounds):
            rounds.append(one_round(args, persons, url))
            r = rounds[-1]
            print(f"round {i + 1}: HTTP-only {r.http_rate:.0f}/s (searches), "
                  f"{r.traffic_rate:.0f}/s (whole traffic); backfill {r.backfill_rate:.0f}/s "
                  f"({r.backfill_rate / r.http_rate:.0%}, {r.backfill_rate / r.traffic_rate:.0%});"
                  f" CPU {r.backfill_cpu_ms:.1f} ms/profile", file=sys.stderr)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    http_rate = med([r.http_rate for r in rounds])
    backfill_rate = med([r.backfill_rate for r in rounds])
    ratio = med([r.backfill_rate / r.http_rate for r in rounds])
    traffic_rate = med([r.traffic_rate for r in rounds])
    traffic_ratio = med([r.backfill_rate / r.traffic_rate for r in rounds])
    cpu_ms = med([r.backfill_cpu_ms for r in rounds])
    http_cpu = med([r.http_cpu_ms for r in rounds])
    where = "in this process (thread)" if args.in_process_adaptor else "its own process"
    print(f"machine: {describe_machine()}; load average {os.getloadavg()[0]:.1f}")
    shown = display_url(args.database_url) if args.database_url else "SQLite (temporary file)"
    print(f"database: {shown}")
    print(f"profiles: {len(persons)}, adaptor in {where}, latency: {args.latency_ms} ms, "
          f"concurrency: {args.concurrency}, rounds: {args.rounds} (medians)")
    print(f"HTTP-only bound: {http_rate:.0f} profiles/s, searches only (client CPU "
          f"{http_cpu:.2f} ms/request); {traffic_rate:.0f} profiles/s, the backfill's whole "
          "traffic (search + DETAILED for each single hit)")
    print(f"backfill:        {backfill_rate:.0f} profiles/s ({ratio:.0%} of the search bound, "
          f"{traffic_ratio:.0%} of the whole-traffic bound); Linker CPU {cpu_ms:.2f} ms/profile")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in rounds[-1].counts.items() if v))
    print(f"| {datetime.now(UTC):%Y-%m-%d} | {'PostgreSQL' if args.database_url else 'SQLite'} "
          f"| {len(persons)} | {args.concurrency} | **{backfill_rate:.0f}** | {http_rate:.0f} | "
          f"{ratio:.0%} | {traffic_rate:.0f} | {traffic_ratio:.0%} | {cpu_ms:.2f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
