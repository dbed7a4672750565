"""Racing links: many threads at once end with exactly one link; the others get a Conflict."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from linker.services.errors import Conflict, NotFound
from linker.services.linking import LinkingService, create_link
from linker.store.models import AuditEvent, Link
from tests.integration.world import AGENT, World, unique_record
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
