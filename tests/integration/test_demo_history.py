"""The demo's month of history: bulk-inserted, deterministic, shaped like real data, and
readable through the services the dashboard uses (no adaptor needs to run)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from linker.adaptor import load_dataset, people
from linker.core.permissions import SYSTEM
from linker.demo import DEMO_DATASET_SIZE, DEMO_INTEGRATIONS
from linker.demo_history import MARKER_ACTION, _plan_profiles, seed_history
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService
from linker.services.exchange_log import ExchangeLogService
from linker.services.exchanges import ExchangeService
from linker.services.integrations import IntegrationService
from linker.services.reports import ReportService
from linker.store.models import AuditEvent, AutolinkOutcome, Customer, ExchangeRecord, Link

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PROFILES = 600


def integrations(ctx: ServiceContext) -> None:
    """The demo's integrations, at addresses nobody serves (history never calls them)."""
    service = IntegrationService(ctx)
    for port, integration in enumerate(DEMO_INTEGRATIONS, start=1):
        service.apply(SYSTEM, integration.spec(f"http://127.0.0.1:{port}/"))


def snapshot(ctx: ServiceContext) -> tuple[list[tuple[str, str]], list[tuple[str, int, str]]]:
    with ctx.db.session(readonly=True) as s:
        customers = [(c.id, c.name) for c in s.scalars(select(Customer).order_by(Customer.id))]
        links = [tuple(r) for r in s.execute(select(
            Link.customer_id, Link.integration_id, Link.external_customer_id).order_by(
            Link.customer_id, Link.integration_id))]
    return customers, links  # type: ignore[return-value]


def test_history_has_the_shape_of_a_real_month(ctx: ServiceContext) -> None:
    integrations(ctx)
    report = seed_history(ctx.db, profiles=PROFILES, now=NOW, seed=3)
    assert not report.skipped
    assert report.rows["customers"] == PROFILES
    assert report.non_ascii_names > 0
    for outcome in ("linked", "no_match", "ambiguous", "conflict", "error"):
        assert report.outcomes[outcome] > 0, outcome
    with ctx.db.session(readonly=True) as s:
        first, last = s.execute(select(func.min(Customer.created_at),
                                       func.max(Customer.created_at))).one()
        assert NOW - timedelta(days=30) <= first < NOW - timedelta(days=20)
        assert NOW - timedelta(days=2) < last <= NOW
        linked_to = Counter(s.scalars(select(Link.customer_id)))
        assert max(linked_to.values()) >= 3  # some profiles are in several systems
        outcomes = Counter(s.scalars(select(AutolinkOutcome.outcome)))
        assert outcomes == report.outcomes
        failed = s.scalar(select(func.count()).select_from(ExchangeRecord).where(
            ExchangeRecord.integration_name == "Shop (flaky)",
            ExchangeRecord.error_kind.is_not(None)))
        flaky = s.scalar(select(func.count()).select_from(ExchangeRecord).where(
            ExchangeRecord.integration_name == "Shop (flaky)"))
        assert flaky and 0.1 < (failed or 0) / flaky < 0.3
        actions = Counter(s.scalars(select(AuditEvent.action)))
    assert actions["customer.created"] == PROFILES
    assert actions["link.removed"] == actions["suppression.added"] > 0
    assert actions["link.created"] >= sum(linked_to.values())
    assert actions[MARKER_ACTION] == 1

    # The dashboard's services read it: a linked profile's card, coverage, the exchange log.
    customer_id = next(c for c, n in linked_to.items() if n >= 2)
    view = CustomerService(ctx).get(SYSTEM, customer_id)
    assert len(view.links) >= 2 and len(view.pulled) == len(view.links)
    coverage = ReportService(ctx).coverage(SYSTEM)
    assert coverage.customers == PROFILES and 0.3 < coverage.linked_share < 0.95
    page = ExchangeLogService(ctx).page(SYSTEM, limit=5)
    assert len(page.rows) == 5 and page.next_cursor is not None
    ExchangeService(ctx).get(SYSTEM, page.rows[0].id)  # a stored exchange opens


def test_history_is_deterministic_and_written_once(ctx: ServiceContext) -> None:
    integrations(ctx)
    seed_history(ctx.db, profiles=200, now=NOW, seed=11)
    first = snapshot(ctx)
    again = seed_history(ctx.db, profiles=200, now=NOW, seed=11)
    assert again.skipped and snapshot(ctx) == first
    # The plan is a function of the seed: the same seed draws the same profiles (ids too).
    population = people(load_dataset("shop", DEMO_DATASET_SIZE))

    def plan(seed: int) -> list[tuple[str, str | None]]:
        rng = random.Random(f"linker-demo-history:{seed}")
        return [(p.id, p.email) for p in _plan_profiles(rng, population, 200, set(), set(),
                                                         NOW, 30)]
    assert plan(11) == plan(11) != plan(12)
    assert [c for c, _ in first[0]] == sorted(i for i, _ in plan(11))
