"""Manual linking against the real reference adaptor: search, link, unlink, suppression.

The adaptors run in-process: ``ctx.client`` sends every request through ``HostRouter``, an ASGI
app that hands each request to the reference adaptor app registered for its Host, and counts
the calls each host receives. The shared helpers live in world.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from linker.adaptor import load_dataset
from linker.contract import validate_response
from linker.core.grouping import group_hits
from linker.services.errors import Conflict, InvalidInput, NotFound
from linker.services.linking import LinkingService, create_link
from linker.store.models import Suppression
from tests.integration.world import (
    AGENT,
    LOYALTY_QUERY,
    LOYALTY_RESULTS,
    TRAVEL_QUERY,
    World,
    request_query,
    shared_person,
    unique_record,
)

# --------------------------------------------------------------------------------------- search


def test_search_one_integration_returns_rows_and_stores_the_exchange(world: World) -> None:
    shop_id = world.add_integration("Shop", "shop")
    person = unique_record()
    customer = world.add_customer("Someone", [person.emails[0]])
    outcome = LinkingService(world.ctx).search(
        AGENT, customer, integration_ids=[shop_id], fields={"email": person.emails[0]})
    assert [(c.attribute, c.label) for c in outcome.columns] == [
        ("name", "Name"), ("email", "Email"), ("phone", "Phone")]
    assert len(outcome.rows) == 1
    row = outcome.rows[0]
    assert row.system_names == ("Shop",)
    assert row.systems[0].external_customer_id == person.external_customer_id
    assert row.values["name"] == person.name
    assert not outcome.failures and not outcome.all_failed and outcome.message == ""
    [stored] = world.exchanges()
    assert (stored.trigger, stored.kind, stored.actor) == ("search", "search", "alice")
    assert (stored.customer_id, stored.integration_id) == (customer, shop_id)
    assert request_query(stored) == {"email": person.emails[0], "id": customer}
    assert outcome.exchange_ids == {"Shop": stored.id}


def test_search_all_groups_the_same_person_across_systems(world: World) -> None:
    shop_rec, loyalty_rec = shared_person()
    world.add_integration("Shop", "shop")
    world.add_integration("Loyalty", "loyalty", query=LOYALTY_QUERY, results=LOYALTY_RESULTS)
    outcome = LinkingService(world.ctx).search(
        AGENT, None, integration_ids=None, fields={"email": shop_rec.emails[0]})
    assert outcome.searched == ("Loyalty", "Shop")
    assert len(outcome.rows) == 1
    row = outcome.rows[0]
    assert sorted(row.system_names) == ["Loyalty", "Shop"]
    ids = {s.integration_name: s.external_customer_id for s in row.systems}
    assert ids == {"Shop": shop_rec.external_customer_id,
                   "Loyalty": loyalty_rec.external_customer_id}
    assert [c.attribute for c in outcome.columns] == ["name", "tier", "email", "phone"]
    assert row.values["tier"] == loyalty_rec.custom_attributes["tier"]
    assert row.values["email"] != ""


def test_search_all_skips_linked_and_inactive_integrations(world: World) -> None:
    shop_rec, loyalty_rec = shared_person()
    world.add_integration("Shop", "shop")
    loyalty = world.add_integration("Loyalty", "loyalty", query=LOYALTY_QUERY)
    world.add_integration("Travel", "travel", query=TRAVEL_QUERY, active=False)
    customer = world.add_customer("P", [shop_rec.emails[0]])
    with world.ctx.db.session() as s:
        create_link(s, customer_id=customer, integration_id=loyalty,
                    external_customer_id=loyalty_rec.external_customer_id, method="manual",
                    actor=AGENT)
    outcome = LinkingService(world.ctx).search(
        AGENT, customer, integration_ids=None,
        fields={"email": shop_rec.emails[0], "phone": "+14155550100"})
    assert outcome.searched == ("Shop",)
    assert (world.calls("Loyalty"), world.calls("Travel"), world.calls("Shop")) == (0, 0, 1)


def test_search_with_one_failing_integration_returns_partial_results(world: World) -> None:
    world.add_integration("Shop", "shop")
    flaky = world.add_integration("Flaky", "shop", faults=["status:500"])
    email = unique_record().emails[0]
    outcome = LinkingService(world.ctx).search(AGENT, None, integration_ids=None,
                                               fields={"email": email})
    assert [r.system_names for r in outcome.rows] == [("Shop",)]
    assert not outcome.all_failed and outcome.message == ""
    [failure] = outcome.failures
    assert (failure.integration_id, failure.integration_name) == (flaky, "Flaky")
    assert failure.error_kind == "http_status" and "500" in failure.message
    stored = {e.id: e for e in world.exchanges()}
    assert stored[failure.exchange_id].error_kind == "http_status"


def test_search_with_a_hanging_integration_still_returns_the_others(world: World) -> None:
    world.add_integration("Shop", "shop")
    world.add_integration("Loyalty", "loyalty", query=LOYALTY_QUERY)
    world.add_integration("Hanging", "shop", faults=["hang"], timeout_s=0.5)
    shop_rec, _ = shared_person()
    outcome = LinkingService(world.ctx).search(AGENT, None, integration_ids=None,
                                               fields={"email": shop_rec.emails[0]})
    assert [sorted(r.system_names) for r in outcome.rows] == [["Loyalty", "Shop"]]
    assert [(f.integration_name, f.error_kind) for f in outcome.failures] == [
        ("Hanging", "timeout")]


def test_search_where_every_system_fails_says_so_and_names_them(world: World) -> None:
    world.add_integration("Broken", "shop", faults=["status:503"])
    world.add_integration("Garbled", "shop", faults=["malformed-json"])
    outcome = LinkingService(world.ctx).search(AGENT, None, integration_ids=None,
                                               fields={"email": "a@example.com"})
    assert outcome.all_failed and outcome.rows == ()
    assert outcome.message.startswith("Sorry, search is not working right now")
    assert "Broken failed (http_status" in outcome.message
    assert "Garbled failed (invalid_json" in outcome.message


def test_each_integration_gets_only_the_keys_it_declares(world: World) -> None:
    person = unique_record()
    world.add_integration("Shop", "shop")
    world.add_integration("Travel", "travel", query=TRAVEL_QUERY)
    world.add_integration("Bare", "shop", query=[])
    outcome = LinkingService(world.ctx).search(
        AGENT, None, integration_ids=None,
        fields={"email": person.emails[0], "orderNumber": "", "favouriteColour": "blue"})
    assert outcome.searched == ("Shop",)
    reasons = {s.integration_name: s.reason for s in outcome.skipped}
    assert "Mobile phone" in reasons["Travel"]
    assert "no search query attributes" in reasons["Bare"]
    [stored] = world.exchanges()
    assert request_query(stored) == {"email": person.emails[0]}


def test_order_number_search_never_finds_archived_orders(world: World) -> None:
    shop_id = world.add_integration("Shop", "shop")
    shop = load_dataset("shop")
    archived = shop.archived_order_numbers()[0]
    live = next(n for r in shop.records for n in r.order_numbers())
    service = LinkingService(world.ctx)
    found = service.search(AGENT, None, integration_ids=[shop_id], fields={"orderNumber": live})
    assert len(found.rows) == 1
    missing = service.search(AGENT, None, integration_ids=[shop_id],
                             fields={"orderNumber": archived})
    assert missing.rows == () and not missing.failures


def test_search_needs_a_filled_field_and_known_integrations(world: World) -> None:
    service = LinkingService(world.ctx)
    with pytest.raises(InvalidInput) as err:
        service.search(AGENT, None, integration_ids=None, fields={"email": "  "})
    assert "fields" in err.value.fields
    with pytest.raises(NotFound):
        service.search(AGENT, None, integration_ids=[999], fields={"email": "a@b.co"})
    with pytest.raises(NotFound):
        service.search(AGENT, "nobody", integration_ids=None, fields={"email": "a@b.co"})


def test_search_of_an_inactive_integration_is_skipped_without_a_request(world: World) -> None:
    off = world.add_integration("Off", "shop", active=False)
    outcome = LinkingService(world.ctx).search(AGENT, None, integration_ids=[off],
                                               fields={"email": "a@example.com"})
    assert [s.integration_name for s in outcome.skipped] == ["Off"]
    assert world.calls("Off") == 0 and world.exchanges() == []


def test_search_results_say_which_profile_holds_a_record(world: World) -> None:
    shop_id = world.add_integration("Shop", "shop")
    person = unique_record()
    holder = world.add_customer("Holder Person")
    with world.ctx.db.session() as s:
        create_link(s, customer_id=holder, integration_id=shop_id,
                    external_customer_id=person.external_customer_id, method="manual",
                    actor=AGENT)
    outcome = LinkingService(world.ctx).search(AGENT, None, integration_ids=[shop_id],
                                               fields={"email": person.emails[0]})
    hit = outcome.rows[0].systems[0]
    assert hit.linked_customer_id == holder
    assert hit.linked_customer == f"Holder Person (id {holder})"


def test_search_fields_are_the_union_prefilled_from_the_profile(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    travel = world.add_integration("Travel", "travel", query=TRAVEL_QUERY)
    customer = world.add_customer("Ada", ["Ada@Example.com"],
                                  [("+442071234567", "HOME"), ("+14155550199", "MOBILE")])
    fields = LinkingService(world.ctx).search_fields(AGENT, [shop, travel], customer)
    by_attribute = {f.attribute: f for f in fields}
    assert list(by_attribute) == ["email", "phone", "orderNumber"]
    assert by_attribute["email"].prefill == "Ada@Example.com"
    assert by_attribute["phone"].prefill == "+14155550199"
    assert by_attribute["phone"].label == "Phone"
    assert by_attribute["phone"].integrations == ("Shop", "Travel")
    assert by_attribute["orderNumber"].prefill == ""
    with world.ctx.db.session() as s:
        create_link(s, customer_id=customer, integration_id=shop, external_customer_id="x",
                    method="manual", actor=AGENT)
    unlinked = LinkingService(world.ctx).search_fields(AGENT, None, customer)
    assert [f.attribute for f in unlinked] == ["phone"]
    assert unlinked[0].label == "Mobile phone"


# ------------------------------------------------------------------------------------- grouping


def _result(external_id: str, **fields: Any) -> Any:
    payload = {"results": [{"externalCustomerId": external_id, **fields}]}
    return validate_response(payload).results[0]


def test_grouping_rules() -> None:
    a = _result("a", emails=[{"original": "X@Example.com"}])
    b = _result("b", emails=[{"original": " x@example.com"}])
    c = _result("c", phones=[{"original": "+1 415 555 0199", "type": "MOBILE"}])
    d = _result("d", phones=[{"original": "(415) 555-0199", "type": "MOBILE"}])
    e = _result("e", phones=[{"original": "+14155550199", "type": "HOME"}])
    f = _result("f", name="Ada  Lovelace", address="1 Main St")
    g = _result("g", name="ada lovelace", address="1 main st")
    assert group_hits([(1, a), (2, b)]) == [[0, 1]]
    assert group_hits([(1, a), (1, b)]) == [[0], [1]]  # never two results of one system
    assert group_hits([(1, c), (2, d), (3, e)]) == [[0, 1], [2]]  # only MOBILE phones group
    assert group_hits([(1, f), (2, g)]) == [[0, 1]]
    assert group_hits([(1, f), (2, _result("h", name="Ada Lovelace"))]) == [[0], [1]]


def test_grouping_never_joins_two_results_of_one_system_through_a_third() -> None:
    a = _result("a", emails=[{"original": "a@example.com"}])
    b = _result("b", emails=[{"original": "b@example.com"}])
    bridge = _result("c", emails=[{"original": "a@example.com"}, {"original": "b@example.com"}])
    assert group_hits([(1, a), (1, b), (2, bridge)]) == [[0, 2], [1]]


# ---------------------------------------------------------------------------------------- link


def test_link_then_detailed_data_appears(world: World) -> None:
    shop_id = world.add_integration("Shop", "shop")
    person = unique_record(with_transactions=True)
    customer = world.add_customer("Someone Else", ["someone@example.org"])
    outcome = LinkingService(world.ctx).link(AGENT, customer, shop_id,
                                             f" {person.external_customer_id} ")
    assert outcome.link.external_customer_id == person.external_customer_id
    assert (outcome.link.method, outcome.link.created_by) == ("manual", "alice")
    assert outcome.refresh is not None and outcome.refresh.ok, outcome.refresh
    pulled = world.pulled(customer, shop_id)
    assert pulled is not None and pulled.fetched_at is not None
    assert len(pulled.transactions) == len(person.transactions)
    assert pulled.custom_attributes == {k: v for k, v in person.custom_attributes.items() if v}
    kinds = [(e.kind, e.trigger, e.actor, e.customer_id) for e in world.exchanges()]
    assert kinds == [("detailed", "detailed", "alice", customer)]
    [created] = world.audit("link.created")
    assert (created.entity_id, created.actor) == (customer, "alice")
    assert created.after is not None and created.after["integration"] == "Shop"


def test_link_keeps_the_link_when_the_refresh_fails(world: World) -> None:
    flaky = world.add_integration("Flaky", "shop", faults=["status:500"])
    customer = world.add_customer("P")
    outcome = LinkingService(world.ctx).link(AGENT, customer, flaky, "shop-00001")
    assert outcome.refresh is not None and outcome.refresh.status == "failed"
    assert outcome.refresh.error_kind == "http_status"
    assert [link.external_customer_id for link in world.links(customer)] == ["shop-00001"]
    pulled = world.pulled(customer, flaky)
    assert pulled is not None and pulled.fetched_at is None and "500" in pulled.last_error


def test_link_conflicts_name_the_holder(world: World) -> None:
    shop_id = world.add_integration("Shop", "shop")
    records = load_dataset("shop").records
    first, second = records[0].external_customer_id, records[1].external_customer_id
    holder = world.add_customer("Grace Hopper")
    other = world.add_customer("Ada")
    service = LinkingService(world.ctx)
    service.link(AGENT, holder, shop_id, first)
    with pytest.raises(Conflict, match=rf"external record {first} is already linked to "
                                       rf"Grace Hopper \(id {holder}\)"):
        service.link(AGENT, other, shop_id, first)
    with pytest.raises(Conflict, match=rf"this profile is already linked to Shop .*{first}"):
        service.link(AGENT, holder, shop_id, second)
    assert [link.customer_id for link in world.links(other)] == []
    assert len(world.audit("link.created")) == 1


def test_link_refuses_inactive_integration_and_bad_input(world: World) -> None:
    off = world.add_integration("Off", "shop", active=False)
    customer = world.add_customer("P")
    service = LinkingService(world.ctx)
    with pytest.raises(InvalidInput, match="Off is inactive"):
        service.link(AGENT, customer, off, "shop-00001")
    with pytest.raises(InvalidInput):
        service.link(AGENT, customer, off, "  ")
    with pytest.raises(NotFound):
        service.link(AGENT, "nobody", off, "shop-00001")
    with pytest.raises(NotFound):
        service.link(AGENT, customer, 12345, "shop-00001")
    assert world.calls("Off") == 0 and world.links(customer) == []


def test_create_link_conflict_keeps_the_outer_transaction_usable(world: World) -> None:
    shop_id = world.add_integration("Shop", "shop")
    a, b = world.add_customer("A"), world.add_customer("B")
    with world.ctx.db.session() as s:
        create_link(s, customer_id=a, integration_id=shop_id, external_customer_id="X",
                    method="auto", actor=AGENT)
    with world.ctx.db.session() as s:
        with pytest.raises(Conflict):
            create_link(s, customer_id=b, integration_id=shop_id, external_customer_id="X",
                        method="auto", actor=AGENT)
        create_link(s, customer_id=b, integration_id=shop_id, external_customer_id="Y",
                    method="auto", actor=AGENT)
    assert [link.external_customer_id for link in world.links(b)] == ["Y"]
    with world.ctx.db.session() as s, pytest.raises(NotFound):
        create_link(s, customer_id="ghost", integration_id=shop_id, external_customer_id="Z",
                    method="auto", actor=AGENT)


def test_linking_does_not_clear_a_suppression(world: World) -> None:
    shop_id = world.add_integration("Shop", "shop")
    customer = world.add_customer("P")
    service = LinkingService(world.ctx)
    service.link(AGENT, customer, shop_id, "shop-00001")
    service.unlink(AGENT, customer, shop_id)
    service.link(AGENT, customer, shop_id, "shop-00002")
    with world.ctx.db.session(readonly=True) as s:
        assert s.get(Suppression, (customer, shop_id)) is not None


# -------------------------------------------------------------------------------------- unlink


def _linked_world(world: World) -> tuple[str, int, int]:
    shop_rec, loyalty_rec = shared_person()
    shop = world.add_integration("Shop", "shop")
    loyalty = world.add_integration("Loyalty", "loyalty", query=LOYALTY_QUERY)
    customer = world.add_customer("P", [shop_rec.emails[0]])
    service = LinkingService(world.ctx)
    service.link(AGENT, customer, shop, shop_rec.external_customer_id)
    service.link(AGENT, customer, loyalty, loyalty_rec.external_customer_id)
    assert world.pulled(customer, shop) is not None
    assert world.pulled(customer, loyalty) is not None
    return customer, shop, loyalty


def test_unlink_one_removes_its_data_and_suppresses_auto_linking(world: World) -> None:
    customer, shop, loyalty = _linked_world(world)
    LinkingService(world.ctx).unlink(AGENT, customer, shop)
    assert [link.integration_id for link in world.links(customer)] == [loyalty]
    assert world.pulled(customer, shop) is None
    assert world.pulled(customer, loyalty) is not None
    with world.ctx.db.session(readonly=True) as s:
        assert s.get(Suppression, (customer, shop)) is not None
        assert s.get(Suppression, (customer, loyalty)) is None
    [removed] = world.audit("link.removed")
    assert removed.before is not None and removed.before["integration"] == "Shop"
    assert removed.after is None
    assert len(world.audit("suppression.added")) == 1
    _, emails, _ = world.customer(customer)
    assert emails  # contact data on the profile stays


def test_unlink_all_removes_every_link(world: World) -> None:
    customer, shop, loyalty = _linked_world(world)
    assert LinkingService(world.ctx).unlink_all(AGENT, customer) == 2
    assert world.links(customer) == []
    assert world.pulled(customer, shop) is None and world.pulled(customer, loyalty) is None
    with world.ctx.db.session(readonly=True) as s:
        assert len(s.scalars(select(Suppression)).all()) == 2
    assert len(world.audit("link.removed")) == 2
    assert LinkingService(world.ctx).unlink_all(AGENT, customer) == 0


def test_unlink_of_a_missing_link_is_not_found(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    customer = world.add_customer("P")
    with pytest.raises(NotFound, match="not linked to Shop"):
        LinkingService(world.ctx).unlink(AGENT, customer, shop)


def test_clear_suppression(world: World) -> None:
    customer, shop, _ = _linked_world(world)
    service = LinkingService(world.ctx)
    service.unlink(AGENT, customer, shop)
    service.clear_suppression(AGENT, customer, shop)
    with world.ctx.db.session(readonly=True) as s:
        assert s.get(Suppression, (customer, shop)) is None
    [cleared] = world.audit("suppression.cleared")
    assert cleared.before is not None and cleared.before["integration"] == "Shop"
    with pytest.raises(NotFound, match="not suppressed"):
        service.clear_suppression(AGENT, customer, shop)
