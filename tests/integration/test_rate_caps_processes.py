"""The rate caps hold across processes: three ``linker autolink backfill --shard I/3`` processes,
and three ``linker worker`` processes taking one backfill's chunk jobs, on one PostgreSQL
database against one reference adaptor served over a loopback socket.

The adaptor (a BackgroundServer in this process; the backfills are separate OS processes)
records when each request arrives and how many are in flight. With a cap of 3 at once and
5 per second, it never has more than 3 in flight, and no 1-second window holds more than
5 + 1 request starts: the gate spaces starts 1/5 s apart by the database's clock, and one
request more is allowed for the delivery delay between that moment and the adaptor (see
``linker.lookup.ratelimit``). The same three processes without a cap exceed both, which
shows the recorder would catch a broken cap.

PostgreSQL only (``LINKER_TEST_POSTGRES_URL``): on SQLite a deployment is one process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from linker.adaptor import BackgroundServer, create_app, load_dataset, parse_fault
from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.services.backfill_jobs import CHUNK_TASK, BackfillJobs
from linker.services.context import ServiceContext
from linker.services.integrations import AttributeSpec, IntegrationService, IntegrationSpec
from linker.store.database import Database
from linker.store.models import Customer, CustomerEmail, ExchangeRecord
from linker.store.secretbox import SecretBox, generate_key
from tests.integration.conftest import POSTGRES_URL_ENV, postgres_schema
from tests.integration.workers import Workers, wait_for

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
SIGNING_KEY = "rate-cap-tests-signing-key"
WORKERS = 3
MAX_CONCURRENT = 3
MAX_PER_SECOND = 5.0
LATENCY_MS = 400
PROFILES = 24
JITTER_ALLOWANCE = 1
"""Request starts a 1-second window may hold beyond the cap: the delivery delay between the
moment the gate admits a request and its arrival at the adaptor."""
RUN_TIMEOUT_S = 120.0


@dataclass
class Recorder:
    """ASGI middleware: the arrival time of every request and the most in flight at once."""

    app: Any
    arrivals: list[float] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def most_in_one_second(self) -> int:
        """The most arrivals in any half-open window [t, t + 1 s)."""
        times = sorted(self.arrivals)
        best = 0
        first = 0
        for last, moment in enumerate(times):
            while moment - times[first] >= 1.0:
                first += 1
            best = max(best, last - first + 1)
        return best

    def requests_per_second(self) -> float:
        """Arrivals per second from the first to the last."""
        times = sorted(self.arrivals)
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return (len(times) - 1) / span if span > 0 else 0.0


@pytest.fixture
def pg_settings(tmp_path: Path) -> Iterator[Settings]:
    base_url = os.environ.get(POSTGRES_URL_ENV, "")
    if not base_url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set: rate caps across processes need "
                    "PostgreSQL")
    with postgres_schema(base_url) as url:
        yield Settings(home=tmp_path, database_url=url, secret_key=generate_key())


def _context(settings: Settings) -> ServiceContext:
    db = Database(settings.database_url)
    db.upgrade()
    return ServiceContext(settings=settings, db=db, secrets=SecretBox.from_settings(settings))


def _add_integration(ctx: ServiceContext, name: str, url: str, *, capped: bool) -> int:
    spec = IntegrationSpec(
        name=name, url=url, signing_key=SIGNING_KEY, autolink_enabled=True,
        autolink_fields=("email",),
        search_query_attributes=(AttributeSpec("email", "Email"),),
        search_results_attributes=(AttributeSpec("name", "Name"),),
        max_concurrent_requests=MAX_CONCURRENT if capped else None,
        max_requests_per_second=MAX_PER_SECOND if capped else None)
    return IntegrationService(ctx).create(SYSTEM, spec).id


def _add_customers(ctx: ServiceContext, prefix: str) -> None:
    """PROFILES profiles: two of three with a shop email (a link, then a DETAILED lookup)."""
    shop = load_dataset("shop")
    duplicates = shop.duplicate_emails()
    emails = [r.emails[0] for r in shop.records if r.duplicate_of is None and r.emails
              and not {e.lower() for e in r.emails} & duplicates]
    with ctx.db.session() as s:
        for i in range(PROFILES):
            customer_id = f"{prefix}{i:03d}"
            email = emails[i] if i % 3 else f"{prefix}{i}@nowhere.example"
            s.add(Customer(id=customer_id, name=f"Profile {i}"))
            s.add(CustomerEmail(customer_id=customer_id, original=email,
                                normalized=email.lower(), position=0))


def _backfill_in_processes(settings: Settings, integration: str) -> list[str]:
    """Run WORKERS backfill processes at once (one shard each); their outputs."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LINKER_HOME": str(settings.home),
           "LINKER_DATABASE_URL": settings.database_url,
           "LINKER_SECRET_KEY": settings.secret_key or ""}
    processes = [subprocess.Popen(
        [sys.executable, "-m", "linker.cli.main", "autolink", "backfill", "--integration",
         integration, "--shard", f"{i}/{WORKERS}", "--concurrency", "8"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(WORKERS)]
    outputs = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=RUN_TIMEOUT_S)
            outputs.append(out)
            assert process.returncode == 0, out
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


def _exchanges(ctx: ServiceContext, integration_id: int) -> int:
    with ctx.db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(ExchangeRecord).where(
            ExchangeRecord.integration_id == integration_id)) or 0)


@dataclass
class CapRuns:
    """Both adaptors of a run pair: one behind an integration without caps, one with."""

    open: Recorder
    capped: Recorder
    open_id: int = 0
    capped_id: int = 0

    def assert_caps_held(self, ctx: ServiceContext) -> None:
        """Every request reached its adaptor and was stored; without a cap the processes
        exceed both caps (the recorder sees a broken cap); with them they stay within."""
        assert len(self.open.arrivals) == _exchanges(ctx, self.open_id) > PROFILES
        assert len(self.capped.arrivals) == _exchanges(ctx, self.capped_id) > PROFILES
        assert self.open.max_in_flight > MAX_CONCURRENT
        assert self.open.most_in_one_second() > MAX_PER_SECOND + JITTER_ALLOWANCE
        assert self.capped.max_in_flight <= MAX_CONCURRENT
        assert self.capped.most_in_one_second() <= MAX_PER_SECOND + JITTER_ALLOWANCE
        print(f"\nwithout a cap: {self.open.requests_per_second():.1f} requests/s, "
              f"{self.open.max_in_flight} in flight at most; with {MAX_CONCURRENT} at once "
              f"and {MAX_PER_SECOND:g}/s: {self.capped.requests_per_second():.1f} requests/s, "
              f"{self.capped.max_in_flight} in flight at most, "
              f"{self.capped.most_in_one_second()} in the busiest second")


def _run_open_then_capped(ctx: ServiceContext, backfill: Callable[[str, int], object]) -> CapRuns:
    """Serve two recorded adaptors, add an integration for each and the profiles, then run
    ``backfill(name, integration_id)`` against the open one and then the capped one."""
    faults = [parse_fault(f"latency:{LATENCY_MS}")]
    runs = CapRuns(Recorder(create_app("shop", signing_key=SIGNING_KEY, faults=faults)),
                   Recorder(create_app("shop", signing_key=SIGNING_KEY, faults=faults)))
    with BackgroundServer(runs.open) as open_server, \
            BackgroundServer(runs.capped) as capped_server:
        runs.open_id = _add_integration(ctx, "Open", open_server.url, capped=False)
        runs.capped_id = _add_integration(ctx, "Capped", capped_server.url, capped=True)
        _add_customers(ctx, "c")
        backfill("Open", runs.open_id)
        backfill("Capped", runs.capped_id)
    return runs


def test_three_backfill_processes_stay_within_the_caps(pg_settings: Settings) -> None:
    ctx = _context(pg_settings)
    try:
        runs = _run_open_then_capped(
            ctx, lambda name, _: _backfill_in_processes(pg_settings, name))
    finally:
        ctx.db.dispose()
    runs.assert_caps_held(ctx)


def _backfill_with_workers(ctx: ServiceContext, integration_id: int) -> int:
    """Queue one backfill of the integration as WORKERS chunk jobs, wait for the end; how
    many workers took its chunks."""
    jobs = BackfillJobs(ctx)
    status = jobs.start(SYSTEM, integration_ids=[integration_id], concurrency=8,
                        chunk_size=-(-PROFILES // WORKERS))
    assert sum(status.chunks.values()) == WORKERS
    wait_for(lambda: not jobs.status(SYSTEM, status.run).active, "the chunk jobs to finish",
             RUN_TIMEOUT_S)
    assert jobs.status(SYSTEM, status.run).chunks == {"succeeded": WORKERS}
    with ctx.db.session(readonly=True) as s:
        return int(s.scalar(text(
            "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs WHERE task_name = :t "
            "AND args->>'run' = :r"), {"t": CHUNK_TASK, "r": status.run}) or 0)


def test_three_workers_sharing_a_backfill_stay_within_the_caps(pg_settings: Settings,
                                                               tmp_path: Path) -> None:
    ctx = _context(pg_settings)
    pool = Workers(ctx, tmp_path)
    sharing: dict[str, int] = {}
    try:
        for _ in range(WORKERS):
            pool.start()
        runs = _run_open_then_capped(
            ctx, lambda name, integration_id: sharing.update(
                {name: _backfill_with_workers(ctx, integration_id)}))
    finally:
        pool.stop()
        ctx.db.dispose()
    assert sharing["Capped"] == WORKERS  # the capped run's chunks ran on all three workers
    runs.assert_caps_held(ctx)
