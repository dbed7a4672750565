"""Unlinking takes off the profile what the unlinked system brought (issue 22 §1): the emails
and phones a refresh pulled from it (labelled "(from <system>)" on the card) go with the link;
what the profile held on its own, typed by an agent, stays, even when a record carries it too.

Hand-made records, so what each system brings is known: Shop adds a work email and a mobile,
Loyalty a club email and a home phone; both carry the profile's own email.
"""

from __future__ import annotations

from linker.services.linking import LinkingService
from linker.store.models import AuditEvent
from tests.integration.world import AGENT, LOYALTY_QUERY, World, dataset, record

OWN_EMAIL, OWN_PHONE = "ada@home.example", "+14155550100"
SHOP_EMAIL, SHOP_PHONE = "ada@work.example", "+14155550101"
CLUB_EMAIL, CLUB_PHONE = "ada@club.example", "+14155550102"
SHOP = record("shop-1", emails=[OWN_EMAIL, SHOP_EMAIL], phones=[(SHOP_PHONE, "MOBILE")])
LOYALTY = record("loy-1", emails=[OWN_EMAIL, CLUB_EMAIL], phones=[(CLUB_PHONE, "HOME")])


def contacts(world: World, customer: str) -> tuple[dict[str, str], dict[str, str]]:
    """The profile's emails and phones, each with its source ("" when entered locally)."""
    _, emails, phones = world.customer(customer)
    return ({e.original: e.source for e in emails}, {p.e164: p.source for p in phones})


def linked_to_both(world: World) -> tuple[str, int, int]:
    """A profile with its own email and mobile, linked by hand to Shop and Loyalty (each
    link's refresh added that system's contacts)."""
    shop = world.add_integration("Shop", dataset(SHOP))
    loyalty = world.add_integration("Loyalty", dataset(LOYALTY), query=LOYALTY_QUERY)
    customer = world.add_customer("Ada Lovelace", [OWN_EMAIL], [(OWN_PHONE, "MOBILE")])
    service = LinkingService(world.ctx)
    service.link(AGENT, customer, shop, "shop-1")
    service.link(AGENT, customer, loyalty, "loy-1")
    assert contacts(world, customer) == (
        {OWN_EMAIL: "", SHOP_EMAIL: "Shop", CLUB_EMAIL: "Loyalty"},
        {OWN_PHONE: "", SHOP_PHONE: "Shop", CLUB_PHONE: "Loyalty"})
    return customer, shop, loyalty


def removals(world: World) -> list[AuditEvent]:
    """The audit events of contacts taken off a profile, oldest first."""
    return world.audit("customer.contacts_removed")


def test_unlink_one_takes_off_the_contacts_that_system_brought(world: World) -> None:
    customer, _, loyalty = linked_to_both(world)
    LinkingService(world.ctx).unlink(AGENT, customer, loyalty)
    assert contacts(world, customer) == ({OWN_EMAIL: "", SHOP_EMAIL: "Shop"},
                                         {OWN_PHONE: "", SHOP_PHONE: "Shop"})
    [event] = removals(world)
    assert (event.actor, event.entity_id, event.after) == (AGENT.username, customer, None)
    assert event.before == {"integration": "Loyalty", "emails": [CLUB_EMAIL],
                            "phones": [CLUB_PHONE]}


def test_unlink_all_keeps_only_what_the_profile_had_on_its_own(world: World) -> None:
    customer, _, _ = linked_to_both(world)
    assert LinkingService(world.ctx).unlink_all(AGENT, customer) == 2
    assert contacts(world, customer) == ({OWN_EMAIL: ""}, {OWN_PHONE: ""})
    assert sorted(e.before["integration"] for e in removals(world) if e.before) == [
        "Loyalty", "Shop"]


def test_a_contact_taken_off_can_be_held_again(world: World) -> None:
    customer, shop, _ = linked_to_both(world)
    service = LinkingService(world.ctx)
    service.unlink(AGENT, customer, shop)
    other = world.add_customer("Someone else", [SHOP_EMAIL], [(SHOP_PHONE, "MOBILE")])
    assert contacts(world, other) == ({SHOP_EMAIL: ""}, {SHOP_PHONE: ""})


def test_unlinking_a_system_that_brought_nothing_removes_no_contact(world: World) -> None:
    shop = world.add_integration("Shop", dataset(record("shop-2", emails=[OWN_EMAIL])))
    customer = world.add_customer("Ada Lovelace", [OWN_EMAIL], [(OWN_PHONE, "MOBILE")])
    service = LinkingService(world.ctx)
    service.link(AGENT, customer, shop, "shop-2")
    service.unlink(AGENT, customer, shop)
    assert contacts(world, customer) == ({OWN_EMAIL: ""}, {OWN_PHONE: ""})
    assert removals(world) == []
