"""Load and crash tests on PostgreSQL against reference adaptors over loopback sockets.

- **Load**: N simulated agents (threads) open profiles, search, link and unlink at random for
  a while, with one adaptor faulty (errors and latency) and one backfill running beside them.
  Zero unhandled errors; afterwards the invariants hold: one link per customer per
  integration, one customer per external record, one audit event per change (created/removed
  alternate per pair and add up to the final state), one outcome per auto-link attempt.
  Prints operations per second and p95 per operation.
- **Crash**: a backfill in a subprocess is SIGKILLed halfway; a re-run takes over its lease at
  once (the holder's process is gone), finishes the links left without DETAILED data, and the
  database ends consistent: every profile linked once, one outcome per attempt, data pulled.

Small in CI; ``make load`` (LINKER_LOAD_FULL=1) runs the issue's size: 20 agents for 60 s.
Timings are printed, never asserted.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from linker.adaptor import BackgroundServer, create_app, load_dataset, parse_fault
from linker.config import Settings
from linker.core.permissions import Actor, Role
from linker.lookup import LookupClient
from linker.services.backfill import BackfillService
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput, NotFound
from linker.services.linking import LinkingService
from linker.services.profile import ProfileService
from linker.store.database import Database
from linker.store.models import (
    AuditEvent,
    AutolinkOutcome,
    BackfillLease,
    Customer,
    CustomerEmail,
    ExchangeRecord,
    Integration,
    Link,
    PulledData,
)
from linker.store.secretbox import SecretBox, generate_key
from tests.integration.conftest import POSTGRES_URL_ENV, postgres_schema

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("LINKER_LOAD_FULL") == "1"
AGENTS = 20 if FULL else 4
SECONDS = 60.0 if FULL else 4.0
PROFILES = 280 if FULL else 80
CRASH_PROFILES = 280 if FULL else 120
SIGNING_KEY = "load-test-signing-key"
QUERY = [{"attribute": "email", "label": "Email"}, {"attribute": "phone", "label": "Phone"}]
RESULTS = [{"attribute": "name", "label": "Name"}, {"attribute": "email", "label": "Email"}]
ADMIN = Actor("load-admin", Role.ADMIN)
EXPECTED_REFUSALS = (Conflict, NotFound, InvalidInput)
DEADLINE_S = 600.0


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get(POSTGRES_URL_ENV, "")
    if not base:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set: the load and crash tests run on PostgreSQL")
    with postgres_schema(base) as url:
        yield url


@pytest.fixture
def ctx(pg_url: str, tmp_path: Path) -> Iterator[ServiceContext]:
    settings = Settings(home=tmp_path, database_url=pg_url, secret_key=generate_key())
    db = Database(pg_url)
    db.upgrade()
    yield ServiceContext(settings=settings, db=db, secrets=SecretBox.from_settings(settings),
                         client=LookupClient())
    db.dispose()


def add_integration(ctx: ServiceContext, name: str, url: str) -> int:
    with ctx.db.session() as s:
        integration = Integration(
            name=name, name_key=name.lower(), url=url,
            signing_key_enc=ctx.secrets.encrypt(SIGNING_KEY), search_query_attributes=QUERY,
            search_results_attributes=RESULTS, autolink_enabled=True,
            autolink_fields=["email"], headers=[], timeout_s=5.0)
        s.add(integration)
        s.flush()
        return integration.id


def add_profiles(ctx: ServiceContext, count: int) -> list[tuple[str, str]]:
    """Profiles carrying the first email of distinct shop records: ``(id, email)``."""
    shop = load_dataset("shop")
    duplicates = shop.duplicate_emails()
    emails = [r.emails[0] for r in shop.records if r.emails and r.duplicate_of is None
              and r.emails[0].lower() not in duplicates][:count]
    assert len(emails) == count, "the shop dataset has too few distinct emails"
    profiles = [(f"p{i:05d}", email) for i, email in enumerate(emails)]
    with ctx.db.session() as s:
        for customer_id, _ in profiles:
            s.add(Customer(id=customer_id, name=f"Load {customer_id}", custom_attributes={}))
        s.flush()
        for customer_id, email in profiles:
            s.add(CustomerEmail(customer_id=customer_id, original=email,
                                normalized=email.strip().lower(), position=0))
    return profiles


def serve(stack: ExitStack, dataset: str, *faults: str) -> str:
    app = create_app(dataset, signing_key=SIGNING_KEY,
                     faults=tuple(parse_fault(f) for f in faults))
    server = stack.enter_context(BackgroundServer(app))
    return str(server.url)


# ------------------------------------------------------------------------------ invariants


def assert_invariants(ctx: ServiceContext) -> dict[str, int]:
    """Every invariant of the issue; returns a few counts for the report."""
    with ctx.db.session(readonly=True) as s:
        per_pair = s.execute(select(Link.customer_id, Link.integration_id, func.count())
                             .group_by(Link.customer_id, Link.integration_id)
                             .having(func.count() > 1)).all()
        per_record = s.execute(select(Link.integration_id, Link.external_customer_id,
                                      func.count())
                               .group_by(Link.integration_id, Link.external_customer_id)
                               .having(func.count() > 1)).all()
        links = {(link.customer_id, link.integration_id)
                 for link in s.scalars(select(Link))}
        events = s.scalars(select(AuditEvent).where(
            AuditEvent.action.in_(["link.created", "link.removed"])).order_by(AuditEvent.id))
        history: dict[tuple[str, int], list[str]] = defaultdict(list)
        for event in events:
            view = event.after if event.action == "link.created" else event.before
            assert view is not None
            history[(event.entity_id, int(view["integration_id"]))].append(event.action)
        autolink_exchanges = set(s.scalars(select(ExchangeRecord.id).where(
            ExchangeRecord.kind == "autolink")))
        outcome_refs = Counter(s.scalars(select(AutolinkOutcome.exchange_id).where(
            AutolinkOutcome.exchange_id.is_not(None))))
    assert per_pair == [] and per_record == []
    for pair, actions in history.items():
        expected = ["link.created", "link.removed"] * len(actions)
        assert actions == expected[:len(actions)], (pair, actions)
        assert (actions[-1] == "link.created") == (pair in links), (pair, actions)
    assert links <= set(history), "a link without its link.created event"
    assert [e for e, n in outcome_refs.items() if n != 1] == [], "an attempt with 2 outcomes"
    assert set(outcome_refs) == autolink_exchanges, "an auto-link attempt without its outcome"
    return {"links": len(links), "audited_changes": sum(map(len, history.values())),
            "autolink_attempts": len(autolink_exchanges)}


# ------------------------------------------------------------------------------------ load


@dataclass
class Tally:
    """What the agents did: durations per operation, refusals, unhandled errors."""

    durations: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refusals: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, name: str, operation: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        try:
            operation(*args, **kwargs)
        except EXPECTED_REFUSALS as exc:
            with self.lock:
                self.refusals[f"{name}: {type(exc).__name__}"] += 1
        except BaseException as exc:  # the test asserts there are none
            with self.lock:
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            with self.lock:
                self.durations[name].append(time.perf_counter() - start)


def agent(ctx: ServiceContext, index: int, profiles: list[tuple[str, str]], until: float,
          tally: Tally) -> None:
    """One simulated agent: random profile, random operation, until the deadline."""
    rng = random.Random(index)
    actor = Actor(f"agent{index}", Role.AGENT)
    linking, profile_service = LinkingService(ctx), ProfileService(ctx)

    def link(customer_id: str, email: str) -> None:
        found = linking.search(actor, customer_id, integration_ids=None,
                               fields={"email": email})
        hits = [h for row in found.rows for h in row.systems if h.linked_customer_id is None]
        if hits:
            hit = rng.choice(hits)
            linking.link(actor, customer_id, hit.integration_id, hit.external_customer_id)

    def unlink(customer_id: str) -> None:
        with ctx.db.session(readonly=True) as s:
            ids = list(s.scalars(select(Link.integration_id)
                                 .where(Link.customer_id == customer_id)))
        if ids:
            linking.unlink(actor, customer_id, rng.choice(ids))

    while time.monotonic() < until:
        customer_id, email = rng.choice(profiles)
        choice = rng.random()
        if choice < 0.3:
            tally.run("open", profile_service.open, actor, customer_id)
        elif choice < 0.55:
            tally.run("search", linking.search, actor, customer_id, integration_ids=None,
                      fields={"email": email})
        elif choice < 0.8:
            tally.run("link", link, customer_id, email)
        else:
            tally.run("unlink", unlink, customer_id)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[18] if len(values) >= 2 else values[0]


def test_agents_and_a_backfill_under_load(ctx: ServiceContext) -> None:
    with ExitStack() as stack:
        add_integration(ctx, "Shop", serve(stack, "shop"))
        add_integration(ctx, "Loyalty", serve(stack, "loyalty"))
        add_integration(ctx, "Flaky", serve(stack, "shop", "error-rate:0.3", "jitter:20"))
        profiles = add_profiles(ctx, PROFILES)
        tally = Tally()
        until = time.monotonic() + SECONDS
        backfills: list[Any] = []
        threads = [threading.Thread(target=agent, args=(ctx, i, profiles, until, tally))
                   for i in range(AGENTS)]
        threads.append(threading.Thread(target=tally.run, args=(
            "backfill", lambda: backfills.append(BackfillService(ctx).run(
                ADMIN, concurrency=4)))))
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=DEADLINE_S)
        elapsed = time.monotonic() - started
        assert not any(t.is_alive() for t in threads), "an agent never finished"
    assert tally.errors == []
    counts = assert_invariants(ctx)
    operations = sum(len(v) for k, v in tally.durations.items() if k != "backfill")
    print(f"\nload: {AGENTS} agents for {SECONDS:.0f} s on PostgreSQL, {PROFILES} profiles, "
          f"3 adaptors (Flaky: error-rate 0.3, jitter 20 ms) + 1 backfill")
    print(f"  {operations} operations in {elapsed:.1f} s = {operations / elapsed:.1f} ops/s; "
          f"unhandled errors: {len(tally.errors)}; refusals: {dict(tally.refusals)}")
    for name, values in sorted(tally.durations.items()):
        print(f"  {name:<8} n={len(values):<5} p50={statistics.median(values) * 1000:7.1f} ms"
              f"  p95={p95(values) * 1000:7.1f} ms")
    if backfills:
        print(f"  backfill: {backfills[0].done} profiles, counts {backfills[0].counts}")
    print(f"  afterwards: {counts}")


# ----------------------------------------------------------------------------------- crash


def links_and_missing_data(ctx: ServiceContext) -> tuple[int, int]:
    with ctx.db.session(readonly=True) as s:
        links = s.scalar(select(func.count()).select_from(Link)) or 0
        missing = s.scalar(select(func.count()).select_from(Link).outerjoin(
            PulledData, (PulledData.customer_id == Link.customer_id)
            & (PulledData.integration_id == Link.integration_id))
            .where(PulledData.fetched_at.is_(None))) or 0
    return links, missing


def test_a_backfill_killed_halfway_is_finished_by_the_next_run(ctx: ServiceContext,
                                                               tmp_path: Path) -> None:
    with ExitStack() as stack:
        add_integration(ctx, "Shop", serve(stack, "shop", "latency:40"))
        profiles = add_profiles(ctx, CRASH_PROFILES)
        env = {**os.environ, "LINKER_DATABASE_URL": ctx.settings.database_url,
               "LINKER_SECRET_KEY": str(ctx.settings.secret_key),
               "LINKER_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
        log = (tmp_path / "backfill.log").open("w")
        stack.callback(log.close)
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from linker.cli.main import main; "
             "sys.exit(main(sys.argv[1:]))", "autolink", "backfill", "--concurrency", "4"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while links_and_missing_data(ctx)[0] < len(profiles) // 3:
                assert process.poll() is None, "the backfill ended before it could be killed"
                assert time.monotonic() < deadline, "the backfill made no progress"
                time.sleep(0.02)  # polling the database with a deadline, not waiting blindly
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=60) == -signal.SIGKILL
        finally:
            if process.poll() is None:
                process.kill()
        linked_at_kill, missing_at_kill = links_and_missing_data(ctx)
        with ctx.db.session(readonly=True) as s:
            assert s.scalar(select(func.count()).select_from(BackfillLease)) == 1  # left behind
        summary = BackfillService(ctx).run(ADMIN, concurrency=4)  # takes the dead one's lease
        linked, missing = links_and_missing_data(ctx)
    assert (linked, missing) == (len(profiles), 0)
    assert summary.healed == missing_at_kill and summary.heal_failed == 0
    counts = assert_invariants(ctx)
    with ctx.db.session(readonly=True) as s:
        linked_outcomes = s.scalar(select(func.count()).select_from(AutolinkOutcome)
                                   .where(AutolinkOutcome.outcome == "linked"))
        per_customer = s.execute(select(Link.customer_id, func.count())
                                 .group_by(Link.customer_id)).all()
    assert linked_outcomes == len(profiles)  # no lost outcome, none twice
    assert all(n == 1 for _, n in per_customer) and len(per_customer) == len(profiles)
    print(f"\ncrash: SIGKILL after {linked_at_kill} of {len(profiles)} links, "
          f"{missing_at_kill} without DETAILED data; the re-run healed {summary.healed}, "
          f"resumed past {summary.resumed}, linked {summary.counts['linked']}; {counts}")
