"""Racing links: many threads at once end with exactly one link; the others get a Conflict.
Refreshes of one profile racing from several systems end without a deadlock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, text

from linker.core.permissions import SYSTEM
from linker.lookup import Trigger
from linker.services.errors import Conflict, NotFound
from linker.services.linking import LinkingService, create_link
from linker.services.refresh import apply_refresh, plan_refresh
from linker.services.refresh_batch import apply_refreshes
from linker.store import links as links_store
from linker.store.models import AuditEvent, Link
from tests.integration.world import AGENT, World, dataset, link_manually, record, unique_record
from tests.integration.world import race as race_threads

THREADS = 20


def race(work: Callable[[int], object]) -> tuple[int, list[str], list[BaseException]]:
    """Run ``work(i)`` in THREADS threads released together; count wins, conflicts, crashes."""
    outcomes = race_threads(work, THREADS)
    conflicts = [str(o) for o in outcomes if isinstance(o, Conflict)]
    crashes = [o for o in outcomes
               if isinstance(o, BaseException) and not isinstance(o, Conflict)]
    return len(outcomes) - len(conflicts) - len(crashes), conflicts, crashes


def _link_count(world: World) -> int:
    with world.ctx.db.session(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(Link)) or 0


def _audit_count(world: World) -> int:
    with world.ctx.db.session(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "link.created")) or 0


def test_one_customer_many_external_records_at_once(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    customer = world.add_customer("Ada")

    def work(i: int) -> None:
        with world.ctx.db.session() as s:
            create_link(s, customer_id=customer, integration_id=shop,
                        external_customer_id=f"X-{i}", method="auto", actor=AGENT)

    wins, conflicts, crashes = race(work)
    assert crashes == []
    assert (wins, len(conflicts)) == (1, THREADS - 1)
    assert all("this profile is already linked to Shop" in c for c in conflicts)
    assert _link_count(world) == 1 and _audit_count(world) == 1


def test_many_customers_one_external_record_at_once(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    customers = [world.add_customer(f"Person {i}") for i in range(THREADS)]

    def work(i: int) -> None:
        with world.ctx.db.session() as s:
            create_link(s, customer_id=customers[i], integration_id=shop,
                        external_customer_id="SHARED", method="auto", actor=AGENT)

    wins, conflicts, crashes = race(work)
    assert crashes == []
    assert (wins, len(conflicts)) == (1, THREADS - 1)
    assert all("external record SHARED is already linked to Person" in c for c in conflicts)
    assert _link_count(world) == 1 and _audit_count(world) == 1


def test_manual_links_racing_through_the_service(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    person = unique_record()
    customers = [world.add_customer(f"Person {i}") for i in range(THREADS)]
    service = LinkingService(world.ctx)

    def work(i: int) -> None:
        outcome = service.link(AGENT, customers[i], shop, person.external_customer_id)
        assert outcome.refresh is not None and outcome.refresh.ok

    wins, conflicts, crashes = race(work)
    assert crashes == []
    assert (wins, len(conflicts)) == (1, THREADS - 1)
    assert _link_count(world) == 1
    assert sum(1 for e in world.exchanges() if e.kind == "detailed") == 1


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
def test_racing_unlinks_and_links_of_one_pair_audit_each_real_change_once(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    person = unique_record()
    customer = world.add_customer("Ada")
    service = LinkingService(world.ctx)
    service.link(AGENT, customer, shop, person.external_customer_id)

    def work(i: int) -> str:
        if i % 2:
            service.link(AGENT, customer, shop, person.external_customer_id)
            return "linked"
        service.unlink(AGENT, customer, shop)
        return "unlinked"

    outcomes = race_threads(work, THREADS)
    crashes = [o for o in outcomes
               if isinstance(o, BaseException) and not isinstance(o, Conflict | NotFound)]
    assert crashes == []
    with world.ctx.db.session(readonly=True) as s:
        events = list(s.scalars(select(AuditEvent.action).where(
            AuditEvent.action.in_(["link.created", "link.removed"])).order_by(AuditEvent.id)))
    links = _link_count(world)
    created, removed = outcomes.count("linked"), outcomes.count("unlinked")
    # one audit event per real change, and the changes add up to the final state
    assert events.count("link.created") == 1 + created
    assert events.count("link.removed") == removed
    assert 1 + created - removed == links
    assert removed >= 1  # the first unlink always finds the link
    assert len(world.audit("suppression.added")) == 1  # added once, never cleared here


POLL_DEADLINE_S = 30.0
X, Y = "+14155550111", "+14155550122"


def _waiting_on_a_lock(world: World, pid: int) -> bool:
    with world.ctx.db.session(readonly=True) as s:
        return s.scalar(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                        {"pid": pid}) == "Lock"


@pytest.mark.parametrize("second", ["one", "batch"])
def test_refreshes_of_one_profile_from_several_systems_do_not_deadlock(
        world: World, db_url: str, second: str) -> None:
    """An agent's open applies system A (phone X) and then C (phone Y) in one transaction while
    another refresh applies system B (Y, then X). Without a lock on the profile B inserts Y and
    waits for X, then the open waits for Y: PostgreSQL kills one as a deadlock (seen in the load
    test). With it, B waits for the open to commit and then finds both phones there."""
    if not db_url.startswith("postgresql"):
        pytest.skip("row locks and deadlocks are PostgreSQL's; SQLite has one writer")
    ids = {name: world.add_integration(name, dataset(record("R-1", phones=phones)))
           for name, phones in (("A", [(X, "HOME")]), ("C", [(Y, "HOME")]),
                                ("B", [(Y, "HOME"), (X, "HOME")]))}
    customer = world.add_customer("Ada")
    for integration in ids.values():
        link_manually(world, customer, integration, "R-1")
    ctx = world.ctx
    with ctx.db.session(readonly=True) as s:
        plans = {name: plan_refresh(ctx, links_store.link_of(s, customer, integration))
                 for name, integration in ids.items()}
    answers = {name: ctx.client.lookup_sync(plan.target, plan.request,
                                            trigger=Trigger.DETAILED)
               for name, plan in plans.items() if plan is not None and plan.target is not None}
    assert len(answers) == 3
    pid: list[int] = []
    outcome: list[Any] = []

    def apply_b() -> None:
        try:
            with ctx.db.session() as s:
                pid.append(s.scalar(text("SELECT pg_backend_pid()")))
                items = [(plans["B"], answers["B"])]
                outcome.extend(apply_refreshes(ctx, s, SYSTEM, items) if second == "batch"
                               else [apply_refresh(ctx, s, SYSTEM, *items[0])])
        except BaseException as exc:  # handed back to the test, which asserts on it
            outcome.append(exc)

    with ctx.db.session() as s:
        first = [apply_refresh(ctx, s, AGENT, plans["A"], answers["A"])]
        other = threading.Thread(target=apply_b)
        other.start()
        deadline = time.monotonic() + POLL_DEADLINE_S
        while not (pid and _waiting_on_a_lock(world, pid[0])):
            assert other.is_alive() and time.monotonic() < deadline, "B never waited"
        first.append(apply_refresh(ctx, s, AGENT, plans["C"], answers["C"]))
    other.join(timeout=POLL_DEADLINE_S)
    assert not other.is_alive()
    assert [o.error for o in first] == [None, None]
    assert [getattr(o, "error", o) for o in outcome] == [None]
    _, _, phones = world.customer(customer)
    assert sorted(p.e164 for p in phones) == [X, Y]
