"""Time the first render of the Health, Coverage and Audit log pages on a big database, with
AppTest (the same script runs the tests use), plus their page changes.

Run: ``.venv/bin/python bench/pages_render.py [--database-url URL] [--profiles 100000]
[--exchanges 1000000] [--audit 200000] [--rounds 3] [--reuse]``

Without ``--reuse`` the database (default: a new SQLite file ``.linker/pages-bench.db``) is
replaced and filled with SQLAlchemy Core bulk inserts: four integrations; profiles with one
email each, linked to Shop for about half (auto for most) and to Loyalty for a third; the latest
auto-link outcome of most unlinked (profile, Shop) pairs, of every kind; exchanges over the last
30 days with ~6 % failures of every error kind; audit events from a few actors. With
``--reuse`` an existing database is used as it is (e.g. one from ``bench/gen_big_db.py``).

Every round starts with empty Streamlit caches, so each figure is a cold first render (the
database pages are warm in the OS cache after the first round; medians are printed).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st
from apptest_pages import ROOT, print_medians, signed_in, timed
from machine import describe_machine
from sqlalchemy import Table, insert
from streamlit.testing.v1 import AppTest

from linker.store.database import Database, display_url
from linker.store.models import (
    AuditEvent,
    AutolinkOutcome,
    Customer,
    CustomerEmail,
    ExchangeRecord,
    Integration,
    Link,
)
from linker.store.secretbox import generate_key

BATCH = 10_000
INTEGRATIONS = ["Shop", "Loyalty", "Travel", "Flaky Shop"]
OUTCOMES = [("no_match", 40), ("ambiguous", 15), ("no_field_match", 10), ("conflict", 5),
            ("error", 10), ("skipped", 5)]
ERRORS = ["timeout", "http_status", "invalid_json", "contract", "unreachable"]
ACTIONS = ["link.created", "link.removed", "customer.created", "customer.refreshed",
           "integration.updated", "suppression.added"]


# -- the database -----------------------------------------------------------------------------


def _fill(db: Database, table: Table, rows: Iterator[dict[str, Any]], label: str) -> None:
    start, count, batch = time.perf_counter(), 0, []
    with db.engine.begin() as connection:
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                connection.execute(insert(table), batch)
                count += len(batch)
                batch = []
        if batch:
            connection.execute(insert(table), batch)
            count += len(batch)
    print(f"  {label}: {count:,} rows in {time.perf_counter() - start:.1f} s", flush=True)


def generate(db: Database, profiles: int, exchanges: int, audit: int, seed: int) -> None:
    """Fill an empty, migrated database (see the module docstring)."""
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    with db.engine.begin() as connection:
        for n, name in enumerate(INTEGRATIONS):
            connection.execute(insert(Integration.__table__), {
                "id": n + 1, "name": name, "name_key": name.lower(),
                "url": f"http://127.0.0.1:{8401 + n}/", "headers": [],
                "search_query_attributes": [], "search_results_attributes": [],
                "autolink_fields": [], "created_at": now, "updated_at": now})

    def cid(i: int) -> str:
        return f"c{i:08d}"

    def created(i: int) -> datetime:
        return now - timedelta(days=60) + timedelta(seconds=i * 60 * 86400 / profiles)

    _fill(db, Customer.__table__, ({"id": cid(i), "name": f"Person {i}", "address": "",
                                    "custom_attributes": {}, "created_at": created(i),
                                    "updated_at": created(i)} for i in range(profiles)),
          "customers")
    _fill(db, CustomerEmail.__table__, ({"customer_id": cid(i), "original": f"p{i}@x.example",
                                         "normalized": f"p{i}@x.example", "position": 0,
                                         "source": ""} for i in range(profiles)), "emails")

    def links() -> Iterator[dict[str, Any]]:
        for i in range(profiles):
            at = created(i) + timedelta(minutes=5)
            if i % 2 == 0:
                yield {"customer_id": cid(i), "integration_id": 1,
                       "external_customer_id": f"s{i}", "created_by": "system",
                       "method": "auto" if i % 10 else "manual", "created_at": at}
            if i % 3 == 0:
                yield {"customer_id": cid(i), "integration_id": 2,
                       "external_customer_id": f"l{i}", "method": "auto",
                       "created_by": "system", "created_at": at}

    _fill(db, Link.__table__, links(), "links")
    kinds, weights = zip(*OUTCOMES, strict=True)

    def outcomes() -> Iterator[dict[str, Any]]:
        for i in range(profiles):
            if i % 2 == 0:
                yield {"customer_id": cid(i), "integration_id": 1, "outcome": "linked",
                       "reason": "one record matched", "candidates": 1, "trigger": "create",
                       "actor": "system", "created_at": created(i)}
            elif i % 5:  # one unlinked profile in five was never tried
                outcome = rnd.choices(kinds, weights)[0]
                yield {"customer_id": cid(i), "integration_id": 1, "outcome": outcome,
                       "reason": f"{outcome.replace('_', ' ')} on email", "candidates": 0,
                       "trigger": "create", "actor": "system", "created_at": created(i)}

    _fill(db, AutolinkOutcome.__table__, outcomes(), "auto-link outcomes")
    span = 30 * 86400

    def exchange_rows() -> Iterator[dict[str, Any]]:
        for n in range(exchanges):
            iid = rnd.choice((1, 1, 2, 3, 4))
            failed = rnd.random() < (0.3 if iid == 4 else 0.04)
            error = rnd.choice(ERRORS) if failed else None
            yield {"integration_id": iid, "integration_name": INTEGRATIONS[iid - 1],
                   "customer_id": cid(rnd.randrange(profiles)), "actor": "system",
                   "kind": "search", "trigger": "autolink", "correlation_id": f"r{n}",
                   "started_at": now - timedelta(seconds=span * (1 - n / exchanges)),
                   "elapsed_ms": rnd.lognormvariate(3.5, 0.6) + (5000 if error == "timeout"
                                                                 else 0),
                   "method": "POST", "url": f"http://127.0.0.1:{8400 + iid}/",
                   "request_headers": {"Content-Type": "application/json"},
                   "request_body": '{"kind":"BASIC","email":"p@x.example"}',
                   "response_status": 500 if error == "http_status" else None if error
                   in ("timeout", "unreachable") else 200, "response_headers": {},
                   "response_body": '{"results":[]}', "response_size": 14,
                   "body_truncated": False, "error_kind": error,
                   "error_message": f"{error} from the adaptor" if error else None,
                   "violations": [], "result_count": 0}

    _fill(db, ExchangeRecord.__table__, exchange_rows(), "exchanges")

    def audit_rows() -> Iterator[dict[str, Any]]:
        for n in range(audit):
            action = rnd.choice(ACTIONS)
            yield {"at": now - timedelta(seconds=span * (1 - n / audit)),
                   "actor": rnd.choice(("alice", "bob", "lead", "system")), "role": "agent",
                   "action": action, "entity_type": "customer",
                   "entity_id": cid(rnd.randrange(profiles)), "before": None,
                   "after": {"integration_id": 1, "integration": "Shop"}}

    _fill(db, AuditEvent.__table__, audit_rows(), "audit events")


# -- timing -----------------------------------------------------------------------------------


def seconds(action: Callable[[], AppTest]) -> float:
    """Seconds ``action`` took; raises when the app raised."""
    return timed(action)[0]


def round_once() -> dict[str, float]:
    """One cold round: every measured step, in seconds."""
    st.cache_data.clear()
    figures: dict[str, float] = {}
    at = signed_in("support_lead")
    figures["frame + Health first render (24 h, lands there)"] = seconds(at.run)
    figures["Health, switch to last week"] = seconds(
        lambda: at.radio(key="health.window").set_value("7d").run())
    figures["Coverage first render"] = seconds(lambda: at.switch_page("../pages/coverage.py").run())
    figures["Coverage worklist, next page"] = seconds(
        lambda: at.button(key="coverage.next").click().run())
    figures["Coverage worklist, reason 'ambiguous'"] = seconds(
        lambda: at.selectbox(key="coverage.reason").set_value("ambiguous").run())
    figures["Audit log first render"] = seconds(lambda: at.switch_page("../pages/audit.py").run())
    figures["Audit log, older page"] = seconds(lambda: at.button(key="audit.older").click().run())
    figures["Audit log, filter actor 'bob'"] = seconds(
        lambda: at.selectbox(key="audit.actor").set_value("bob").run())
    return figures


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the database, then time ``--rounds`` cold rounds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--exchanges", type=int, default=1_000_000)
    parser.add_argument("--audit", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="use the database as it is")
    args = parser.parse_args(argv)
    url = args.database_url
    if not url:
        path = ROOT / ".linker" / "pages-bench.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not args.reuse:
            path.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    print(describe_machine())
    print(f"database: {display_url(url)}")
    db = Database(url)
    db.upgrade()
    if not args.reuse:
        start = time.perf_counter()
        generate(db, args.profiles, args.exchanges, args.audit, args.seed)
        print(f"  generated in {time.perf_counter() - start:.1f} s")
    db.dispose()
    home = tempfile.mkdtemp(prefix="linker-bench-")
    os.environ.update(LINKER_DATABASE_URL=url, LINKER_HOME=home,
                      LINKER_SECRET_KEY=os.environ.get("LINKER_SECRET_KEY") or generate_key())
    os.environ.pop("LINKER_DEV_ROLE", None)
    rounds = [round_once() for _ in range(args.rounds)]
    print_medians("step", rounds, 52)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
