""""Why (not) linked?" for every state, against the real reference adaptor (in-process)."""

from __future__ import annotations

import pytest

from linker.adaptor import load_dataset
from linker.core.permissions import Actor, Role
from linker.services.autolinking import autolink_customer
from linker.services.errors import NotFound
from linker.services.why import Explanation, LinkState, WhyService
from linker.store.models import Integration, Suppression
from tests.integration.world import World, link_manually, record_held_elsewhere, unique_record

AGENT = Actor("alice", Role.AGENT)
LEAD = Actor("lena", Role.SUPPORT_LEAD)


def explain(world: World, customer: str, integration: int) -> Explanation:
    return WhyService(world.ctx).explain(LEAD, customer, integration)


def autolink(world: World, customer: str) -> None:
    autolink_customer(world.ctx, AGENT, customer, trigger="profile_opened")


def set_integration(world: World, integration_id: int, **values: object) -> None:
    with world.ctx.db.session() as s:
        integration = s.get(Integration, integration_id)
        assert integration is not None
        for key, value in values.items():
            setattr(integration, key, value)


def test_auto_linked_shows_link_and_trail(world: World) -> None:
    person = unique_record()
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Someone", [person.emails[0]])
    autolink(world, customer)

    why = explain(world, customer, shop)

    assert why.state is LinkState.LINKED_AUTO
    assert why.external_customer_id == person.external_customer_id
    assert why.linked_by == "alice" and why.linked_at is not None
    assert "automatically" in why.summary and why.fix == ""
    # Newest first: the DETAILED refresh after the link, then the auto-link outcome.
    assert [(t.entry, t.exchange_kind) for t in why.trail] == [
        ("exchange", "detailed"), ("outcome", "autolink")]
    latest = why.latest_outcome
    assert latest is not None and latest.outcome == "linked" and latest.status == 200
    assert latest.exchange_id is not None


def test_manually_linked_names_who(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    customer = world.add_customer("Someone", ["someone@example.com"])
    link_manually(world, customer, shop, "X-1")
    why = explain(world, customer, shop)
    assert why.state is LinkState.LINKED_MANUAL
    assert "manually by alice" in why.summary and "X-1" in why.summary
    assert why.fix == ""


def test_link_to_inactive_integration_is_dormant(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    customer = world.add_customer("Someone", ["someone@example.com"])
    link_manually(world, customer, shop, "X-1")
    world.set_active(shop, False)
    why = explain(world, customer, shop)
    assert why.state is LinkState.LINKED_MANUAL
    assert "dormant" in why.summary and why.fix.startswith("Activate Shop")


def test_suppressed_says_since_when_and_by_whom(world: World) -> None:
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Someone", ["someone@example.com"])
    with world.ctx.db.session() as s:
        s.add(Suppression(customer_id=customer, integration_id=shop, created_by="bob"))
    autolink(world, customer)
    why = explain(world, customer, shop)
    assert why.state is LinkState.SUPPRESSED
    assert why.suppressed_by == "bob" and why.suppressed_at is not None
    assert "bob unlinked it" in why.summary
    assert why.fix.startswith("Clear the suppression")
    assert why.latest_outcome is not None and why.latest_outcome.outcome == "suppressed"
    assert why.latest_outcome.exchange_id is None


def test_inactive_integration(world: World) -> None:
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"], active=False)
    customer = world.add_customer("Someone", ["someone@example.com"])
    why = explain(world, customer, shop)
    assert why.state is LinkState.INTEGRATION_INACTIVE
    assert why.fix.startswith("Activate Shop") and why.trail == ()


def test_autolink_off_and_suppressed_lists_both(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    customer = world.add_customer("Someone", ["someone@example.com"])
    with world.ctx.db.session() as s:
        s.add(Suppression(customer_id=customer, integration_id=shop, created_by="bob"))
    why = explain(world, customer, shop)
    assert why.blockers == (LinkState.SUPPRESSED, LinkState.AUTOLINK_OFF)
    assert "Turn on auto-linking for Shop" in why.fix and "Clear the suppression" in why.fix


def test_autolink_off(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    customer = world.add_customer("Someone", ["someone@example.com"])
    why = explain(world, customer, shop)
    assert why.state is LinkState.AUTOLINK_OFF
    assert why.fix.startswith("Turn on auto-linking for Shop")


def test_no_autolink_fields(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    set_integration(world, shop, autolink_enabled=True)
    customer = world.add_customer("Someone", ["someone@example.com"])
    why = explain(world, customer, shop)
    assert why.state is LinkState.NO_FIELDS
    assert "Add an auto-linking field" in why.fix


def test_never_attempted(world: World) -> None:
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Someone", ["someone@example.com"])
    why = explain(world, customer, shop)
    assert why.state is LinkState.NOT_LINKED and why.latest_outcome is None
    assert "backfill" in why.fix


def test_no_match_suggests_manual_link(world: World) -> None:
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Nobody", ["nobody@nowhere.example"])
    autolink(world, customer)
    why = explain(world, customer, shop)
    assert why.state is LinkState.NOT_LINKED
    assert "no_match" in why.summary and "link manually" in why.fix


def test_ambiguous_names_the_records_sharing_the_email(world: World) -> None:
    shop_data = load_dataset("shop")
    duplicate = next(r for r in shop_data.records if r.duplicate_of is not None)
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Twin", [duplicate.emails[0]])
    autolink(world, customer)
    why = explain(world, customer, shop)
    assert why.state is LinkState.NOT_LINKED
    email = duplicate.emails[0].lower()
    assert why.fix.startswith("Resolve the ambiguity: results ")
    assert f"share the email {email}" in why.fix
    assert duplicate.external_customer_id in why.fix and str(duplicate.duplicate_of) in why.fix


def test_error_points_at_the_exchange(world: World) -> None:
    shop = world.add_integration("Shop", "shop", faults=["status:500"],
                                 autolink_fields=["email"])
    customer = world.add_customer("Someone", ["someone@example.com"])
    autolink(world, customer)
    why = explain(world, customer, shop)
    latest = why.latest_outcome
    assert latest is not None and latest.outcome == "error"
    assert (latest.error_kind, latest.status) == ("http_status", 500)
    assert why.fix.startswith(f"Fix the adaptor: see exchange {latest.exchange_id}")


def test_conflict_names_the_record(world: World) -> None:
    shop, holder, customer = record_held_elsewhere(world)
    autolink(world, customer)
    why = explain(world, customer, shop)
    assert why.state is LinkState.NOT_LINKED
    assert why.fix.startswith("Record R-1 is already linked to another profile")
    assert holder in why.summary


def test_nothing_to_send_suggests_adding_a_mobile(world: World) -> None:
    travel = world.add_integration("Travel", "travel", autolink_fields=["mobile"])
    customer = world.add_customer("No phone", ["someone@example.com"])
    autolink(world, customer)
    why = explain(world, customer, travel)
    assert why.fix.startswith("Add a MOBILE phone to the profile")


def test_trail_is_newest_first(world: World) -> None:
    shop = world.add_integration("Shop", "shop", faults=["status:503"],
                                 autolink_fields=["email"])
    customer = world.add_customer("Nobody", ["nobody@nowhere.example"])
    autolink(world, customer)
    world.serve("Shop", "shop")  # the adaptor got fixed
    autolink(world, customer)
    why = explain(world, customer, shop)
    assert [t.outcome for t in why.trail] == ["no_match", "error"]
    assert why.trail[0].at >= why.trail[1].at
    assert "no_match" in why.summary


def test_unknown_customer_or_integration(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    customer = world.add_customer("Someone", ["someone@example.com"])
    with pytest.raises(NotFound, match="customer"):
        explain(world, "missing", shop)
    with pytest.raises(NotFound, match="integration"):
        explain(world, customer, 999)


@pytest.mark.parametrize("role", list(Role))
def test_every_role_may_ask_why(world: World, role: Role) -> None:
    shop = world.add_integration("Shop", "shop")
    customer = world.add_customer("Someone", ["someone@example.com"])
    why = WhyService(world.ctx).explain(Actor("x", role), customer, shop)
    assert why.customer_name == "Someone" and why.integration_name == "Shop"
