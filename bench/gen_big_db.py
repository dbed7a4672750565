"""Build a big database for the page benchmarks: 100,000 profiles and 1,000,000 exchanges.

Run: ``.venv/bin/python bench/gen_big_db.py [--database-url URL] [--profiles 100000]
[--exchanges 1000000] [--days 30]``

The database must be empty (default: a new SQLite file ``.linker/big.db``, replaced if it
exists); it is migrated first, then filled with SQLAlchemy Core bulk inserts in batches:

- four integrations (Shop, Loyalty, Travel and a flaky copy of Shop);
- profiles with one email each, a MOBILE phone for most, linked to Shop for about half and to
  Loyalty for about a third;
- exchanges spread over the last ``--days`` days (ids rising with time, as in real use), with
  the demo's mix of triggers, about 6% failures of every error kind, and real-looking request
  and response bodies.

Prints the time each table took, for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from machine import describe_machine  # bench/machine.py (the script's folder)
from sqlalchemy import Table, insert, text

from linker.store.database import Database, display_url
from linker.store.models import (
    Customer,
    CustomerEmail,
    CustomerPhone,
    ExchangeRecord,
    Integration,
    Link,
)

BATCH = 10_000
INTEGRATIONS = [("Shop", 8401), ("Loyalty", 8402), ("Travel", 8403), ("Flaky Shop", 8404)]
TRIGGERS = [("autolink", 30), ("search", 25), ("detailed", 35), ("backfill", 6), ("test", 2),
            ("conformance", 1), ("replay", 1)]
ERRORS = [("timeout", None), ("http_status", 500), ("http_status", 503), ("invalid_json", 200),
          ("contract", 200), ("unreachable", None)]


def _customer_id(i: int) -> str:
    return f"c{i:08d}"


def _batches(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _fill(db: Database, table: Table, rows: Iterator[dict[str, Any]], label: str) -> None:
    start = time.perf_counter()
    count = 0
    for batch in _batches(rows):
        with db.engine.begin() as connection:
            connection.execute(insert(table), batch)
        count += len(batch)
    print(f"{label}: {count:,} rows in {time.perf_counter() - start:.1f} s", flush=True)


def _customers(n: int, now: datetime) -> Iterator[dict[str, Any]]:
    for i in range(n):
        at = now - timedelta(days=60) + timedelta(seconds=i * 30)
        yield {"id": _customer_id(i), "name": f"Person {i}", "address": f"{i} Main Street",
               "custom_attributes": {}, "created_at": at, "updated_at": at}


def _emails(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        email = f"person{i}@example.com"
        yield {"customer_id": _customer_id(i), "original": email, "normalized": email,
               "position": 0, "source": ""}


def _phones(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        if i % 10 == 9:
            continue
        e164 = f"+1555{i:07d}"
        yield {"customer_id": _customer_id(i), "original": e164, "e164": e164, "type": "MOBILE",
               "mobile_key": e164, "position": 0, "source": ""}


def _links(n: int, ids: list[int], now: datetime) -> Iterator[dict[str, Any]]:
    for i in range(n):
        for integration_id, share, prefix in ((ids[0], 2, "shop"), (ids[1], 3, "loyalty")):
            if i % share == 0:
                yield {"customer_id": _customer_id(i), "integration_id": integration_id,
                       "external_customer_id": f"{prefix}-{i:07d}",
                       "method": "auto" if i % 7 else "manual", "created_by": "system",
                       "created_at": now - timedelta(days=30) + timedelta(seconds=i * 20)}


def _exchanges(n: int, profiles: int, ids: list[int], days: int, now: datetime,
               rng: random.Random) -> Iterator[dict[str, Any]]:
    names = {integration_id: name for integration_id, (name, _) in zip(ids, INTEGRATIONS,
                                                                          strict=True)}
    triggers = [t for t, weight in TRIGGERS for _ in range(weight)]
    span = timedelta(days=days).total_seconds()
    start = now - timedelta(days=days)
    for i in range(n):
        integration_id = ids[rng.randrange(len(ids))]
        trigger = rng.choice(triggers)
        kind = {"autolink": "autolink", "backfill": "autolink", "detailed": "detailed",
                "replay": "search"}.get(trigger, "search")
        customer = _customer_id(rng.randrange(profiles)) if trigger != "conformance" else None
        # Rounded to the millisecond so some exchanges share a start time (keyset ties).
        at = start + timedelta(milliseconds=int(span * 1000 * i / n))
        failure = rng.random() < (0.25 if names[integration_id] == "Flaky Shop" else 0.03)
        error_kind, status = rng.choice(ERRORS) if failure else (None, 200)
        email = f"person{rng.randrange(profiles)}@example.com"
        body = json.dumps({"lookupLevel": "DETAILED" if kind == "detailed" else "BASIC",
                           "query": {"emails": [email]} if kind == "autolink" else
                           {"email": email}, "uniqueMatchRequired": kind == "detailed"},
                          sort_keys=True, separators=(",", ":"))
        found = f'{{"results":[{{"externalCustomerId":"shop-{rng.randrange(profiles):07d}"}}]}}'
        answer = (None if status is None else found if error_kind is None else
                  '{"errors":[{"detail":"injected"}]}')
        yield {
            "integration_id": integration_id, "integration_name": names[integration_id],
            "customer_id": customer, "actor": "system", "kind": kind, "trigger": trigger,
            "correlation_id": f"{rng.getrandbits(128):032x}"[:22], "started_at": at,
            "elapsed_ms": rng.lognormvariate(3.4, 0.6), "method": "POST",
            "url": f"http://127.0.0.1:{8401 + ids.index(integration_id)}/",
            "request_headers": {"Content-Type": "application/json",
                                "Gladly-Authorization": "Signature=****"},
            "request_body": body, "response_status": status,
            "response_headers": {"content-type": "application/json"} if status else None,
            "response_body": answer, "response_size": len(answer or ""),
            "body_truncated": False, "error_kind": error_kind,
            "error_message": f"{error_kind} (generated)" if error_kind else None,
            "violations": [], "result_count": 1 if error_kind is None else 0, "replay_of": None,
        }


def main(argv: list[str] | None = None) -> int:
    """Build the database; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--database-url", default="", help="an empty database "
                        "(default: sqlite:///.linker/big.db, recreated)")
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--exchanges", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    url = args.database_url
    if not url:
        path = Path(".linker/big.db")
        path.parent.mkdir(exist_ok=True)
        for leftover in path.parent.glob("big.db*"):
            leftover.unlink()
        url = f"sqlite:///{path}"
    print(describe_machine())
    print(f"database: {display_url(url)}")
    db = Database(url)
    db.upgrade()
    with db.engine.connect() as connection:
        if connection.execute(text("SELECT COUNT(*) FROM customers")).scalar():
            print("error: the database is not empty; give an empty one", file=sys.stderr)
            return 1
    now = datetime.now(UTC)
    total = time.perf_counter()
    with db.session() as s:
        rows = [Integration(name=name, name_key=name.lower(), url=f"http://127.0.0.1:{port}/",
                            search_query_attributes=[{"attribute": "email", "label": "Email"}])
                for name, port in INTEGRATIONS]
        s.add_all(rows)
        s.flush()
        ids = [row.id for row in rows]
    _fill(db, Customer.__table__, _customers(args.profiles, now), "profiles")  # type: ignore[arg-type]
    _fill(db, CustomerEmail.__table__, _emails(args.profiles), "emails")  # type: ignore[arg-type]
    _fill(db, CustomerPhone.__table__, _phones(args.profiles), "phones")  # type: ignore[arg-type]
    _fill(db, Link.__table__, _links(args.profiles, ids, now), "links")  # type: ignore[arg-type]
    _fill(db, ExchangeRecord.__table__,  # type: ignore[arg-type]
          _exchanges(args.exchanges, args.profiles, ids, args.days, now,
                     random.Random(args.seed)), "exchanges")
    if db.is_sqlite:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    else:
        with db.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    print(f"total: {time.perf_counter() - total:.1f} s")
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
