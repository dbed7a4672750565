"""Every role × every linking service call: allowed (and done) or refused (and nothing done)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from linker.core.permissions import Actor, Role
from linker.services.errors import PermissionDenied
from linker.services.linking import LinkingService
from linker.services.profile import ProfileService
from linker.services.refresh import RefreshService
from linker.store.models import AuditEvent, ExchangeRecord, Link, Suppression
from tests.integration.world import (
    AGENT,
    LOYALTY_QUERY,
    World,
    shared_person,
)


@dataclass
class Scene:
    """A profile linked to Shop (data stale), suppressed for Travel, not linked to Loyalty."""

    world: World
    customer: str
    shop: int
    loyalty: int
    travel: int
    loyalty_record: str
    email: str


def _scene(world: World) -> Scene:
    shop_rec, loyalty_rec = shared_person()
    shop = world.add_integration("Shop", "shop")
    loyalty = world.add_integration("Loyalty", "loyalty", query=LOYALTY_QUERY)
    travel = world.add_integration("Travel", "travel")
    customer = world.add_customer("P", [shop_rec.emails[0]])
    LinkingService(world.ctx).link(AGENT, customer, shop, shop_rec.external_customer_id)
    with world.ctx.db.session() as s:
        s.add(Suppression(customer_id=customer, integration_id=travel, created_by="alice"))
    later = datetime.now(UTC) + timedelta(hours=1)
    world.ctx.now = lambda: later  # the Shop data is now older than the TTL
    return Scene(world, customer, shop, loyalty, travel, loyalty_rec.external_customer_id,
                 shop_rec.emails[0])


def _linking(s: Scene) -> LinkingService:
    return LinkingService(s.world.ctx)


CALLS: dict[str, Callable[[Scene, Actor], object]] = {
    "search": lambda s, a: _linking(s).search(a, s.customer, integration_ids=None,
                                              fields={"email": s.email}),
    "search_fields": lambda s, a: _linking(s).search_fields(a, None, s.customer),
    "link": lambda s, a: _linking(s).link(a, s.customer, s.loyalty, s.loyalty_record),
    "unlink": lambda s, a: _linking(s).unlink(a, s.customer, s.shop),
    "unlink_all": lambda s, a: _linking(s).unlink_all(a, s.customer),
    "clear_suppression": lambda s, a: _linking(s).clear_suppression(a, s.customer, s.travel),
    "refresh": lambda s, a: RefreshService(s.world.ctx).refresh(a, s.customer),
    "refresh_stale": lambda s, a: RefreshService(s.world.ctx).refresh_stale(a, s.customer),
    "open": lambda s, a: ProfileService(s.world.ctx).open(a, s.customer),
}
ALLOWED: dict[str, set[Role]] = {name: {Role.ADMIN, Role.AGENT} for name in CALLS}
ALLOWED["open"] = set(Role)


def _counts(world: World) -> tuple[int, int, int, int]:
    with world.ctx.db.session(readonly=True) as s:
        return tuple(s.scalar(select(func.count()).select_from(table)) or 0  # type: ignore[return-value]
                     for table in (Link, Suppression, AuditEvent, ExchangeRecord))


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize("call", list(CALLS))
def test_role_matrix(world: World, call: str, role: Role) -> None:
    scene = _scene(world)
    actor = Actor(f"user-{role.value}", role)
    before = _counts(world)
    if role in ALLOWED[call]:
        CALLS[call](scene, actor)
        if call != "search_fields":  # everything else leaves a trace: a change or an exchange
            assert _counts(world) != before, f"{call} by {role.value} did nothing"
    else:
        with pytest.raises(PermissionDenied, match=role.value):
            CALLS[call](scene, actor)
        assert _counts(world) == before
