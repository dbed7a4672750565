"""Opening a profile is the system's act, not the viewer's: the refreshes and auto-link attempts
it triggers are recorded as ``system, on open by <viewer>``, never as the viewer alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from linker.core.permissions import Actor, Role
from linker.services.linking import LinkingService
from linker.services.profile import ACTOR_NAME_MAX, ProfileService, on_open_actor
from linker.store.models import AuditEvent, AutolinkOutcome, ExchangeRecord
from tests.integration.world import AGENT, World, dataset, record

LEAD = Actor("lena", Role.SUPPORT_LEAD)
ON_OPEN_BY_LENA = "system, on open by lena"


def actors_recorded(world: World) -> dict[str, set[str]]:
    """Every actor name in the audit log, the exchange log and the auto-link outcomes."""
    with world.ctx.db.session(readonly=True) as s:
        return {"audit": set(s.scalars(select(AuditEvent.actor))),
                "exchanges": set(s.scalars(select(ExchangeRecord.actor))),
                "outcomes": set(s.scalars(select(AutolinkOutcome.actor)))}


def test_the_on_open_actor_names_the_system_and_the_viewer() -> None:
    actor = on_open_actor(LEAD)
    assert actor.username == ON_OPEN_BY_LENA
    assert actor.role is Role.ADMIN  # the system's role: the work is the product's own


def test_a_long_viewer_name_still_fits_the_actor_columns() -> None:
    actor = on_open_actor(Actor("x" * 100 + "@example.com", Role.AGENT))
    assert len(actor.username) == ACTOR_NAME_MAX
    assert actor.username.startswith("system, on open by xxx") and actor.username.endswith("…")


def test_auto_linking_on_open_by_a_read_only_lead_is_recorded_as_the_system(
        world: World) -> None:
    shop = world.add_integration("Shop", dataset(record("R-1", emails=["ada@example.com"])),
                                 autolink_fields=["email"])
    customer = world.add_customer("Ada Lovelace", ["ada@example.com"])

    opened = ProfileService(world.ctx).open(LEAD, customer)

    assert opened.newly_linked == ("Shop",)
    assert opened.acted_as == ON_OPEN_BY_LENA
    [link] = world.links(customer)
    assert (link.integration_id, link.created_by) == (shop, ON_OPEN_BY_LENA)
    [created] = world.audit("link.created")
    assert (created.actor, created.role) == (ON_OPEN_BY_LENA, "admin")
    recorded = actors_recorded(world)
    assert recorded == {"audit": {ON_OPEN_BY_LENA}, "exchanges": {ON_OPEN_BY_LENA},
                        "outcomes": {ON_OPEN_BY_LENA}}


def test_refreshing_stale_data_on_open_is_recorded_as_the_system(world: World) -> None:
    now = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
    world.ctx.now = lambda: now
    shop = world.add_integration("Shop", dataset(record("R-1", emails=["ada@example.com"])))
    customer = world.add_customer("Ada Lovelace", ["ada@example.com"])
    assert LinkingService(world.ctx).link(AGENT, customer, shop, "R-1").refresh is not None
    later = now + timedelta(seconds=world.ctx.settings.detailed_ttl_s + 1)
    world.ctx.now = lambda: later
    # The shop now knows a second email: the refresh adds it to the profile (an audited change).
    world.serve("Shop", dataset(record("R-1", emails=["ada@example.com", "ada@work.example"])))

    opened = ProfileService(world.ctx).open(LEAD, customer)

    assert [r.status for r in opened.refreshes] == ["refreshed"]
    [on_open] = world.audit("customer.refreshed")
    assert on_open.actor == ON_OPEN_BY_LENA
    assert on_open.after is not None and on_open.after["emails_added"] == ["ada@work.example"]
    [_, refresh_exchange] = [e for e in world.exchanges() if e.kind == "detailed"]
    assert refresh_exchange.actor == ON_OPEN_BY_LENA
    assert LEAD.username not in actors_recorded(world)["audit"]


def test_opening_a_fresh_linked_profile_records_nothing(world: World) -> None:
    shop = world.add_integration("Shop", dataset(record("R-1", emails=["ada@example.com"])))
    customer = world.add_customer("Ada Lovelace", ["ada@example.com"])
    LinkingService(world.ctx).link(AGENT, customer, shop, "R-1")
    before = actors_recorded(world)

    opened = ProfileService(world.ctx).open(LEAD, customer)

    assert (opened.refreshes, opened.autolink) == ((), ())
    assert actors_recorded(world) == before
