"""Detailed refresh against the reference adaptor: the data rules, failures, TTL, inactivity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from linker.adaptor import load_dataset
from linker.core.permissions import Actor, Role
from linker.lookup import Trigger
from linker.services.errors import InvalidInput, NotFound
from linker.services.linking import LinkingService
from linker.services.profile import ProfileService
from linker.services.refresh import RefreshService, refresh_link
from linker.store.models import Link
from tests.integration.world import (
    AGENT,
    LOYALTY_QUERY,
    World,
    dataset,
    record,
    request_query,
    unique_record,
)

ORDER = {"type": "ORDER", "orderNumber": "#1001", "orderStatus": "SHIPPED"}
REWARD = {"type": "GENERIC", "reward": "Free coffee"}


class Clock:
    """A settable clock for ``ctx.now``."""

    def __init__(self) -> None:
        self.now = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _detailed_calls(world: World) -> int:
    return sum(1 for e in world.exchanges() if e.kind == "detailed")


def _linked(world: World, *, overwrite: bool = False, profile_name: str = "Ada Lovelace",
            **fields: Any) -> tuple[str, int]:
    """A profile linked to an integration serving one hand-made record (R-1)."""
    integration = world.add_integration("Shop", dataset(record("R-1", **fields)),
                                        overwrite=overwrite)
    customer = world.add_customer(profile_name, ["ada@example.com"],
                                  [("+14155550101", "HOME")], address="1 Old Street",
                                  custom_attributes={"favoriteFood": "Apple Pie"})
    outcome = LinkingService(world.ctx).link(AGENT, customer, integration, "R-1")
    assert outcome.refresh is not None and outcome.refresh.ok, outcome.refresh
    return customer, integration


def test_detailed_request_carries_the_profile(world: World) -> None:
    customer, _ = _linked(world)
    [stored] = world.exchanges()
    body = json.loads(stored.request_body)
    assert (body["lookupLevel"], body["uniqueMatchRequired"]) == ("DETAILED", True)
    assert request_query(stored) == {
        "externalCustomerId": "R-1", "id": customer, "name": "Ada Lovelace",
        "emails": ["ada@example.com"], "phones": ["+14155550101"], "favoriteFood": "Apple Pie"}


def test_custom_attributes_and_transactions(world: World) -> None:
    customer, shop = _linked(world, custom={"tier": "gold", "points": "100", "note": "hi"},
                             transactions=[ORDER, REWARD])
    pulled = world.pulled(customer, shop)
    assert pulled is not None
    assert pulled.custom_attributes == {"tier": "gold", "points": "100", "note": "hi"}
    assert pulled.transactions == [ORDER, REWARD]
    world.serve("Shop", dataset(record("R-1", custom={"tier": "silver", "points": ""},
                                       transactions=[REWARD])))
    [outcome] = RefreshService(world.ctx).refresh(AGENT, customer, shop)
    assert outcome.ok and outcome.custom_attribute_count == 2
    pulled = world.pulled(customer, shop)
    assert pulled is not None
    assert pulled.custom_attributes == {"tier": "silver", "note": "hi"}  # "" cleared, omitted kept
    assert pulled.transactions == [REWARD]


def test_name_and_address_kept_when_overwrite_is_off(world: World) -> None:
    customer, shop = _linked(world, name="Augusta Ada King", address="Ockham Park")
    profile, _, _ = world.customer(customer)
    assert (profile.name, profile.address) == ("Ada Lovelace", "1 Old Street")
    pulled = world.pulled(customer, shop)
    assert pulled is not None and (pulled.name, pulled.address) == ("Augusta Ada King",
                                                                     "Ockham Park")
    assert world.audit("customer.refreshed") == []


def test_name_and_address_overwritten_when_overwrite_is_on(world: World) -> None:
    customer, _ = _linked(world, overwrite=True, name="Augusta Ada King", address="Ockham Park")
    profile, _, _ = world.customer(customer)
    assert (profile.name, profile.address) == ("Augusta Ada King", "Ockham Park")
    [event] = world.audit("customer.refreshed")
    assert event.before == {"name": "Ada Lovelace", "address": "1 Old Street"}
    assert event.after is not None and event.after["name"] == "Augusta Ada King"


def test_blank_profile_name_is_filled_even_without_overwrite(world: World) -> None:
    customer, _ = _linked(world, profile_name="", name="Augusta Ada King", address="Ockham Park")
    profile, _, _ = world.customer(customer)
    assert (profile.name, profile.address) == ("Augusta Ada King", "1 Old Street")


def test_emails_and_phones_are_added_and_values_of_other_profiles_dropped(world: World) -> None:
    other = world.add_customer("Grace Hopper", ["grace@example.com"], [("+14155550177", "MOBILE")])
    customer, shop = _linked(
        world,
        emails=["ADA@example.com", "Grace@Example.com", "ada.king@example.org"],
        phones=[("+1 415 555 0101", "MOBILE"), ("+1 415 555 0177", "MOBILE"),
                ("+1 415 555 0188", "MOBILE")])
    _, emails, phones = world.customer(customer)
    assert [(e.normalized, e.source) for e in emails] == [
        ("ada@example.com", ""), ("ada.king@example.org", "Shop")]
    assert [(p.e164, p.type, p.mobile_key, p.source) for p in phones] == [
        ("+14155550101", "HOME", None, ""),  # the type of an existing phone never changes
        ("+14155550188", "MOBILE", "+14155550188", "Shop")]
    pulled = world.pulled(customer, shop)
    assert pulled is not None
    assert [(d["value"], d["kind"]) for d in pulled.dropped] == [
        ("Grace@Example.com", "email"), ("+1 415 555 0177", "phone")]
    assert all(f"Grace Hopper (id {other})" in d["reason"] for d in pulled.dropped)
    _, other_emails, _ = world.customer(other)
    assert [e.normalized for e in other_emails] == ["grace@example.com"]


def test_refresh_outcome_reports_what_changed(world: World) -> None:
    world.add_customer("Grace Hopper", ["grace@example.com"])
    customer, shop = _linked(world, emails=["grace@example.com", "new@example.com"])
    [outcome] = RefreshService(world.ctx).refresh(AGENT, customer, shop)
    assert outcome.emails_added == ()  # added by the first refresh already
    assert [d.value for d in outcome.dropped] == ["grace@example.com"]
    assert outcome.exchange_id == world.exchanges()[-1].id


def test_failed_refresh_keeps_the_old_data_and_stores_the_error(world: World) -> None:
    clock = Clock()
    world.ctx.now = clock
    customer, shop = _linked(world, custom={"tier": "gold"}, transactions=[ORDER])
    clock.advance(600)
    world.serve("Shop", dataset(record("R-1")), "status:500")
    [outcome] = RefreshService(world.ctx).refresh(AGENT, customer)
    assert (outcome.status, outcome.error_kind) == ("failed", "http_status")
    assert outcome.error is not None and "500" in outcome.error
    pulled = world.pulled(customer, shop)
    assert pulled is not None
    assert pulled.custom_attributes == {"tier": "gold"} and pulled.transactions == [ORDER]
    assert pulled.fetched_at == clock.now - timedelta(seconds=600)
    assert pulled.last_attempt_at == clock.now and "500" in pulled.last_error
    world.serve("Shop", dataset(record("R-1", custom={"tier": "platinum"})))
    [again] = RefreshService(world.ctx).refresh(AGENT, customer)
    pulled = world.pulled(customer, shop)
    assert again.ok and pulled is not None and pulled.last_error == ""
    assert pulled.custom_attributes == {"tier": "platinum"}


def test_an_answer_for_another_record_is_not_applied(world: World) -> None:
    customer, shop = _linked(world, custom={"tier": "gold"})
    world.serve("Shop", dataset(record("R-1", custom={"tier": "x"}), record("R-2")),
                "duplicate-results")
    [outcome] = RefreshService(world.ctx).refresh(AGENT, customer, shop)
    assert outcome.status == "failed" and outcome.error_kind == "contract"
    pulled = world.pulled(customer, shop)
    assert pulled is not None and pulled.custom_attributes == {"tier": "gold"}


def test_an_answer_about_a_different_record_is_refused(world: World) -> None:
    customer, shop = _linked(world, custom={"tier": "gold"})

    async def answer_r2(scope: Any, receive: Any, send: Any) -> None:
        body = json.dumps({"results": [{"externalCustomerId": "R-2",
                                        "customAttributes": {"tier": "x"}}]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    world.router.apps["shop.test"] = answer_r2
    [outcome] = RefreshService(world.ctx).refresh(AGENT, customer, shop)
    assert outcome.status == "failed" and "'R-2'" in outcome.message
    pulled = world.pulled(customer, shop)
    assert pulled is not None and pulled.custom_attributes == {"tier": "gold"}


def test_refresh_on_demand_errors(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    customer = world.add_customer("P")
    service = RefreshService(world.ctx)
    with pytest.raises(NotFound, match="not linked to Shop"):
        service.refresh(AGENT, customer, shop)
    with pytest.raises(NotFound):
        service.refresh(AGENT, "nobody")
    assert service.refresh(AGENT, customer) == []


def test_opening_a_profile_refreshes_only_stale_data(world: World) -> None:
    clock = Clock()
    world.ctx.now = clock
    customer, _ = _linked(world)
    profiles = ProfileService(world.ctx)
    assert _detailed_calls(world) == 1
    clock.advance(60)
    assert profiles.open(AGENT, customer).refreshes == ()
    assert _detailed_calls(world) == 1
    clock.advance(world.ctx.settings.detailed_ttl_s)
    opened = profiles.open(AGENT, customer)
    assert [r.status for r in opened.refreshes] == ["refreshed"]
    assert _detailed_calls(world) == 2
    assert profiles.open(AGENT, customer).refreshes == ()
    service = RefreshService(world.ctx)
    assert service.refresh_stale(AGENT, customer) == []
    clock.advance(world.ctx.settings.detailed_ttl_s + 1)
    assert [r.status for r in service.refresh_stale(AGENT, customer)] == ["refreshed"]


def test_inactive_integrations_get_no_lookups_and_come_back_on_reactivation(
        world: World) -> None:
    clock = Clock()
    world.ctx.now = clock
    customer, shop = _linked(world)
    loyalty_record = load_dataset("loyalty").records[0]
    loyalty = world.add_integration("Loyalty", "loyalty", query=LOYALTY_QUERY)
    LinkingService(world.ctx).link(AGENT, customer, loyalty, loyalty_record.external_customer_id)
    world.set_active(shop, False)
    assert world.pulled(customer, shop) is None
    shop_calls = world.calls("Shop")
    clock.advance(3600)
    outcomes = RefreshService(world.ctx).refresh(AGENT, customer)
    assert [o.integration_name for o in outcomes] == ["Loyalty"]
    with pytest.raises(InvalidInput, match="Shop is inactive"):
        RefreshService(world.ctx).refresh(AGENT, customer, shop)
    opened = ProfileService(world.ctx).open(AGENT, customer)
    assert all(r.integration_name != "Shop" for r in opened.refreshes)
    assert world.calls("Shop") == shop_calls
    assert [link.integration_id for link in world.links(customer) if link.integration_id == shop]
    world.set_active(shop, True)
    opened = ProfileService(world.ctx).open(AGENT, customer)
    assert [r.integration_name for r in opened.refreshes] == ["Shop"]  # data was missing
    assert world.pulled(customer, shop) is not None


def test_refresh_link_inside_a_session(world: World) -> None:
    customer, shop = _linked(world, custom={"tier": "gold"})
    world.serve("Shop", dataset(record("R-1", custom={"tier": "silver"})))
    with world.ctx.db.session() as s:
        link = s.scalar(select(Link).where(Link.customer_id == customer))
        assert link is not None
        outcome = refresh_link(world.ctx, s, AGENT, link, trigger=Trigger.DETAILED)
    assert outcome.ok
    pulled = world.pulled(customer, shop)
    assert pulled is not None and pulled.custom_attributes == {"tier": "silver"}
    world.set_active(shop, False)
    with world.ctx.db.session() as s:
        link = s.scalar(select(Link).where(Link.customer_id == customer))
        assert link is not None
        skipped = refresh_link(world.ctx, s, AGENT, link, trigger=Trigger.DETAILED)
    assert skipped.status == "skipped" and skipped.exchange_id is None


def test_opening_a_profile_auto_links_but_never_after_an_unlink(world: World) -> None:
    person = unique_record()
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Viewer's customer", [person.emails[0].upper()])
    lead = Actor("sam", Role.SUPPORT_LEAD)
    opened = ProfileService(world.ctx).open(lead, customer)
    assert opened.newly_linked == ("Shop",)
    assert [link.external_customer_id for link in world.links(customer)] == [
        person.external_customer_id]
    assert world.pulled(customer, shop) is not None
    assert {e.actor for e in world.exchanges()} == {"system, on open by sam"}  # issue 8
    LinkingService(world.ctx).unlink(AGENT, customer, shop)
    again = ProfileService(world.ctx).open(lead, customer)
    assert again.newly_linked == ()
    assert [r.outcome.value for r in again.autolink] == ["suppressed"]
    assert world.links(customer) == []


def test_open_unknown_profile(world: World) -> None:
    with pytest.raises(NotFound):
        ProfileService(world.ctx).open(AGENT, "nobody")
