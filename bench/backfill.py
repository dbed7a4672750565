"""Backfill benchmark: auto-link 10,000 profiles against the shop adaptor over loopback.

Run: ``.venv/bin/python bench/backfill.py [--size 10000] [--concurrency 32] [--latency-ms 10]
[--database-url URL]``

1. Builds the shop dataset at ``--size`` records and serves it with the reference adaptor over
   a loopback socket (``BackgroundServer``) with ``latency:<ms>`` added to every answer.
2. Bulk-inserts ``--size`` profiles into a fresh database (SQLite in a temporary directory by
   default): one per person of the dataset (personal email + MOBILE phone, so most link by
   email, some only by phone), topped up with people who are in no dataset (no match).
3. HTTP-only bound: the same auto-link requests through the lookup client with the same
   concurrency, no database work.
4. The backfill itself (``BackfillService.run``): auto-link request, decision, link, outcome,
   then the DETAILED lookup and its application for every new link, all stored.

Prints profiles/second for both, the outcome counts, and a line ready for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from machine import describe_machine  # bench/machine.py (the script's folder)
from sqlalchemy import insert

from linker.adaptor import BackgroundServer, Dataset, Person, create_app, load_dataset, people
from linker.adaptor.faults import parse_fault
from linker.config import Settings
from linker.contract import LookupRequest, RequestKind, autolink_request
from linker.demo import allow_demo_adaptors
from linker.lookup import AdaptorTarget, LookupClient, Trigger
from linker.services.backfill import BackfillProgress, BackfillService
from linker.services.context import ServiceContext
from linker.services.permissions import SYSTEM
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
                    concurrency: int) -> tuple[float, Counter[str]]:
    """The same auto-link requests with the same concurrency, no database: seconds, results.

    ``concurrency`` workers share one connection pool and take the next request as soon as
    their previous one is answered.
    """
    requests: Iterator[LookupRequest] = (
        autolink_request(f"b{i:06d}", p.name, [p.email], [p.mobile])
        for i, p in enumerate(persons))
    tally: Counter[str] = Counter()

    async def worker(http: httpx.AsyncClient) -> None:
        for request in requests:
            exchange = await client.lookup(target, request, kind=RequestKind.AUTOLINK,
                                           trigger=Trigger.BACKFILL, client=http)
            if exchange.error is not None:
                tally[f"error:{exchange.error.kind}"] += 1
            else:
                tally[f"{min(len(exchange.results), 2)} result(s)"] += 1

    start = time.perf_counter()
    async with client.http_client() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return time.perf_counter() - start, tally


def progress_bar(p: BackfillProgress) -> None:
    """A one-line progress display on stderr."""
    rate = p.done / p.elapsed_s if p.elapsed_s else 0.0
    sys.stderr.write(f"\r  backfill {p.done}/{p.total} profiles, {rate:.0f}/s")
    sys.stderr.flush()


def main() -> int:
    """Run the benchmark and print the figures."""
    allow_demo_adaptors()  # the benchmark's adaptors listen on loopback
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=int, default=10)
    parser.add_argument("--database-url", default=None,
                        help="an EMPTY database (default: SQLite in a temporary directory)")
    args = parser.parse_args()

    print(f"building the shop dataset at size {args.size}...", file=sys.stderr)
    dataset = load_dataset("shop", size=args.size)
    persons = profile_people(dataset, args.size)
    app = create_app(dataset, signing_key=SIGNING_KEY,
                     faults=[parse_fault(f"latency:{args.latency_ms}")])
    with tempfile.TemporaryDirectory(prefix="linker-bench-") as home, \
            BackgroundServer(app) as server:
        url = args.database_url or f"sqlite:///{Path(home) / 'linker.db'}"
        settings = Settings(home=Path(home), database_url=url, secret_key=generate_key())
        db = Database(url)
        db.upgrade()
        ctx = ServiceContext(settings=settings, db=db, secrets=SecretBox.from_settings(settings))
        seed_start = time.perf_counter()
        seed(ctx, persons, server.url)
        seeded_s = time.perf_counter() - seed_start
        print(f"seeded {len(persons)} profiles in {seeded_s:.1f} s", file=sys.stderr)

        target = AdaptorTarget(server.url, name="Shop", signing_key=SIGNING_KEY,
                               timeout_s=15.0)
        http_s, tally = asyncio.run(http_only(LookupClient(), target, persons,
                                              args.concurrency))
        summary = BackfillService(ctx).run(SYSTEM, concurrency=args.concurrency,
                                           progress=progress_bar)
        sys.stderr.write("\n")
        db.dispose()

    http_rate = len(persons) / http_s
    backfill_rate = summary.profiles_per_second
    print(f"machine: {describe_machine()}")
    print(f"database: {display_url(url) if args.database_url else 'SQLite (temporary file)'}")
    print(f"profiles: {len(persons)}, adaptor latency: {args.latency_ms} ms, concurrency: "
          f"{args.concurrency}")
    print(f"HTTP-only bound: {len(persons)} auto-link requests in {http_s:.2f} s = "
          f"{http_rate:.0f} profiles/s  ({dict(sorted(tally.items()))})")
    print(f"backfill:        {summary.done} profiles in {summary.elapsed_s:.2f} s = "
          f"{backfill_rate:.0f} profiles/s  ({backfill_rate / http_rate:.0%} of the bound)")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in summary.counts.items() if v))
    print(f"| {datetime.now(UTC):%Y-%m-%d} | {'PostgreSQL' if args.database_url else 'SQLite'} "
          f"| {len(persons)} | {args.latency_ms} ms | {args.concurrency} | "
          f"{backfill_rate:.0f} | {http_rate:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
