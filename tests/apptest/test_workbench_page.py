"""The Link workbench under AppTest, against real reference adaptors served over loopback.

The test database gets three integrations (``seed``): Shop and Loyalty (the demo's settings,
signed; Loyalty with Basic auth) and "Broken shop", a shop adaptor answering every request with
HTTP 503, which never auto-links but is searched by "All unlinked external systems". Customers:
Jun (auto-linked to Shop and Loyalty by email) and Grace, whose email two Shop accounts share
(auto-linking is ambiguous, so she is linked by hand).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from linker.adaptor.datasets import DEFAULT_SIZE
from linker.core.permissions import SYSTEM, Actor, Role
from linker.demo import DEMO_INTEGRATIONS, DemoAdaptors, DemoCustomer, seed_demo
from linker.services.facade import Services
from tests.apptest.conftest import shown, texts

SHOP, LOYALTY = DEMO_INTEGRATIONS[0], DEMO_INTEGRATIONS[1]
BROKEN = replace(SHOP, key="broken", name="Broken shop", autolink_fields=(),
                 signing_key="broken-shop-key", faults=("status:503",))
INTEGRATIONS = (SHOP, LOYALTY, BROKEN)
JUN = DemoCustomer("email_match", "Jun Martin", ("jun.martin@example.com",),
                   (("+13035211291", "MOBILE"),))
GRACE = DemoCustomer("duplicate_email", "Grace Evans", ("grace.evans@example.com",), ())
SELECT_ROW_0 = {"selection": {"rows": [0], "columns": [], "cells": []}}
EDIT_KEYS = ("wb.create.submit", "wb.search.submit", "wb.link.submit", "wb.unlink_all")
EDIT_PREFIXES = ("wb.refresh.", "wb.unlink.", "wb.card.allow.")


@pytest.fixture(scope="module")
def adaptor_urls() -> Iterator[dict[str, str]]:
    """Shop, Loyalty and Broken shop adaptors on free loopback ports."""
    # The profiles and ids above are those of the 300-record datasets: serve those.
    with DemoAdaptors(dict.fromkeys(("shop", "loyalty", "broken"), 0),
                      integrations=INTEGRATIONS, dataset_size=DEFAULT_SIZE) as adaptors:
        yield adaptors.urls


@pytest.fixture
def seeded(services: Services, adaptor_urls: dict[str, str]) -> Services:
    """The three integrations and the two customers, created through the services."""
    seed_demo(services.ctx, adaptor_urls, customers=[JUN, GRACE],
              integrations=INTEGRATIONS, accounts=())
    return services


def customer_id(services: Services, email: str) -> str:
    """The id of the profile holding ``email``."""
    found = services.customers.find(SYSTEM, email=email)
    assert len(found) == 1, found
    return found[0].id


def integration_id(services: Services, name: str) -> int:
    """The id of the integration called ``name``."""
    return services.integrations.get_by_name(SYSTEM, name).id


def ok(at: AppTest) -> AppTest:
    """Assert the run raised nothing; return the app for chaining."""
    assert not at.exception, [e.value for e in at.exception]
    return at


def all_text(at: AppTest) -> str:
    """Every message, markdown and caption of the run, joined (for substring checks)."""
    parts: list[str] = []
    for elements in (at.success, at.info, at.warning, at.error, at.markdown, at.caption,
                     at.subheader, at.title):
        parts.extend(texts(elements))
    return "\n".join(parts)


def frames(at: AppTest) -> list[pd.DataFrame]:
    """The data of every dataframe of the run (plain dataframes have no key under AppTest)."""
    return [frame.value for frame in at.dataframe]


def keys_of(at: AppTest) -> set[str]:
    """Keys of every button (form submit buttons included) in the run."""
    found = {b.key for b in at.button if b.key}
    return found | {b.key for b in at.get("form_submit_button") if getattr(b, "key", None)}


def search_fields(at: AppTest) -> dict[str, str]:
    """The search form's fields: attribute → value (their widget keys end in the attribute)."""
    return {str(t.key).rsplit(".", 1)[1]: t.value for t in at.text_input
            if str(t.key).startswith("wb.search.value.")}


def search_field(at: AppTest, attribute: str) -> Any:
    """The search field of ``attribute`` (a text input)."""
    [field] = [t for t in at.text_input if str(t.key).startswith("wb.search.value.")
               and str(t.key).endswith(f".{attribute}")]
    return field


def results_keys(at: AppTest) -> list[str]:
    """Keys of the search results tables shown (one per search, ``wb.results.…``)."""
    return [str(d.key) for d in at.dataframe if str(d.key).startswith("wb.results.")]


def results(at: AppTest) -> pd.DataFrame:
    """The data of the one search results table shown."""
    [key] = results_keys(at)
    return at.dataframe(key=key).value


def select_row_0(at: AppTest) -> AppTest:
    """Select the results table's first row (AppTest cannot click a dataframe) and run."""
    [key] = results_keys(at)
    at.session_state[key] = SELECT_ROW_0
    return ok(at.run())


def system_picker(at: AppTest) -> Any:
    """The "System to link" select box."""
    [picker] = [s for s in at.selectbox if str(s.key).startswith("wb.link.system.")]
    return picker


def find(at: AppTest, by: str, query: str) -> AppTest:
    """Use the find form."""
    at.selectbox(key="wb.find.by").select(by)
    at.text_input(key="wb.find.query").input(query)
    return ok(at.button(key="wb.find.submit").click().run())


@pytest.fixture
def workbench(app_as: Callable[..., AppTest], seeded: Services) -> Callable[[str], AppTest]:
    """``workbench(role)``: the workbench page, signed in as ``role``, on the seeded database."""
    def make(role: str) -> AppTest:
        return ok(app_as(role, page="workbench.py"))

    return make


# -- every role ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["agent", "admin", "support_lead"])
def test_each_allowed_role_renders_the_page_and_opens_a_profile(
        workbench: Callable[[str], AppTest], role: str) -> None:
    at = workbench(role)
    assert [t.value for t in at.title] == ["Link workbench"]
    at = find(at, "Email", JUN.emails[0])
    text = all_text(at)
    assert "Customer: Jun Martin" in text
    assert "**Shop** · external id `shop-00121`" in text
    assert "**Loyalty** · external id" in text
    # Pulled data: Shop's custom attributes and order cards, Loyalty's tier.
    attributes = [set(frame["Attribute"]) for frame in frames(at) if "Attribute" in frame]
    assert {"customerSince", "orderCount", "totalSpent"} in attributes  # Shop
    assert {"tier", "points", "memberSince"} in attributes  # Loyalty
    assert any(m.startswith("**Order #") for m in texts(at.markdown))
    assert any(e.label == "4 Orders" for e in at.expander)
    assert "Fetched " in text
    # "Why (not) linked?": a toggle per integration, read only once it is turned on.
    why = {t.label: t for t in at.toggle if t.key and t.key.startswith("wb.why.")}
    assert set(why) == {"Shop", "Loyalty", "Broken shop"}
    assert "Linked to Shop record shop-00121 (automatically" not in text
    at = ok(why["Shop"].set_value(True).run())
    assert "Linked to Shop record shop-00121 (automatically" in all_text(at)


def test_developer_cannot_reach_the_page(app_as: Callable[..., AppTest], seeded: Services
                                         ) -> None:
    at = ok(app_as("developer"))
    with pytest.raises(ValueError, match=r"workbench\.py"):
        at.switch_page("../pages/workbench.py")


def test_support_lead_sees_no_edit_controls(workbench: Callable[[str], AppTest],
                                            seeded: Services) -> None:
    cid = customer_id(seeded, JUN.emails[0])
    seeded.linking.unlink(SYSTEM, cid, integration_id(seeded, "Loyalty"))
    at = find(workbench("support_lead"), "Email", JUN.emails[0])
    keys = keys_of(at)
    assert not keys & set(EDIT_KEYS), keys
    assert not [k for k in keys if k.startswith(EDIT_PREFIXES)], keys
    assert "Read-only" in all_text(at)
    assert "Link to external systems" not in all_text(at)
    assert "Create a profile" not in all_text(at)
    # The suppression is shown, without the action.
    assert "Auto-linking to Loyalty is off for this profile" in all_text(at)


def test_opening_a_profile_says_the_system_did_the_work_and_records_it_so(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    # Grace is not linked to Shop (her email is on two Shop records): opening her profile
    # makes an auto-link attempt, the system's act on the lead's opening.
    at = find(workbench("support_lead"), "Email", GRACE.emails[0])
    acted_as = "system, on open by support-lead-user"
    assert f'record it as "{acted_as}"' in all_text(at)
    opened = [o.actor for o in seeded.autolink.recent_outcomes(SYSTEM)
              if o.trigger == "profile_opened"]
    assert opened and set(opened) == {acted_as}


# -- agent and admin: the main actions ------------------------------------------------------------


def test_create_and_link_are_visibly_separate(workbench: Callable[[str], AppTest],
                                              seeded: Services) -> None:
    at = find(workbench("agent"), "Email", JUN.emails[0])
    headings = texts(at.subheader)
    assert "Create a profile" in headings and "Link to external systems" in headings
    assert any("nothing is created here" in c for c in texts(at.caption))
    assert at.get_by_key("wb.create_box") is not None  # each in its own bordered container
    assert at.get_by_key("wb.link_section") is not None


def fill_create(at: AppTest, name: str, email: str = "", phone: str = "",
                phone_type: str = "MOBILE") -> AppTest:
    at.text_input(key="wb.create.name").input(name)
    at.text_input(key="wb.create.email").input(email)
    at.text_input(key="wb.create.phone").input(phone)
    at.selectbox(key="wb.create.phone_type").select(phone_type)
    return ok(at.button(key="wb.create.submit").click().run())


def test_a_new_profile_like_an_existing_customer_asks_first_then_creates_another(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    # Jun's mobile phone, typed as a HOME number (HOME numbers need not be unique).
    at = fill_create(workbench("agent"), "J. Martin", phone=JUN.phones[0][0],
                     phone_type="HOME")
    warnings = texts(at.warning)
    assert any(w.startswith("Looks like an existing customer: Jun Martin (same phone")
               for w in warnings), warnings
    assert not seeded.customers.find(SYSTEM, name="J. Martin")  # nothing created yet
    at = ok(at.button(key="wb.create.lookalike.confirm").click().run())
    assert any(s.startswith("Created J. Martin.") for s in texts(at.success)), texts(at.success)
    assert len(seeded.customers.find(SYSTEM, phone=JUN.phones[0][0])) == 2


def test_a_look_alike_opens_from_the_prompt_and_cancel_creates_nothing(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    at = fill_create(workbench("agent"), "Grace Evans")  # same name, no contact data
    assert any("Looks like an existing customer: Grace Evans (same name" in w
               for w in texts(at.warning)), texts(at.warning)
    grace = customer_id(seeded, GRACE.emails[0])
    at = ok(at.button(key=f"wb.create.lookalike.open.{grace}").click().run())
    assert "Customer: Grace Evans" in all_text(at)
    assert at.query_params["customer"] == grace
    assert not any("Looks like an existing customer" in w for w in texts(at.warning))
    at = fill_create(at, "Grace Evans")
    at = ok(at.button(key="wb.create.lookalike.cancel").click().run())
    assert not any("Looks like an existing customer" in w for w in texts(at.warning))
    assert len(seeded.customers.find(SYSTEM, name="Grace Evans")) == 1


@pytest.mark.parametrize("role", ["agent", "admin"])
def test_create_customer_shows_what_auto_linking_did(
        workbench: Callable[[str], AppTest], seeded: Services, role: str) -> None:
    at = workbench(role)
    at.text_input(key="wb.create.name").input("Dmitri Lopez")
    at.text_input(key="wb.create.email").input("dmitri.lopez@example.com")
    at = ok(at.button(key="wb.create.submit").click().run())
    assert any(s.startswith("Created Dmitri Lopez.") for s in texts(at.success)), texts(
        at.success)
    [outcomes] = [frame for frame in frames(at) if "Outcome" in frame]
    by_system = dict(zip(outcomes["Integration"], outcomes["Outcome"], strict=True))
    # dmitri.lopez@example.com belongs to two Shop accounts (a deliberate duplicate).
    assert by_system["Shop"] == "ambiguous"
    assert by_system["Loyalty"] == "linked"
    assert "Customer: Dmitri Lopez" in all_text(at)
    assert seeded.customers.find(SYSTEM, email="dmitri.lopez@example.com")


def test_create_customer_with_bad_email_shows_the_field_error(
        workbench: Callable[[str], AppTest]) -> None:
    at = workbench("agent")
    at.text_input(key="wb.create.name").input("Nobody")
    at.text_input(key="wb.create.email").input("not-an-email")
    at = ok(at.button(key="wb.create.submit").click().run())
    assert any("not-an-email" in e for e in texts(at.error)), texts(at.error)
    assert at.text_input(key="wb.create.email").value == "not-an-email"


@pytest.mark.parametrize("role", ["agent", "admin"])
def test_search_one_system_select_a_row_and_link(
        workbench: Callable[[str], AppTest], seeded: Services, role: str) -> None:
    at = find(workbench(role), "Email", GRACE.emails[0])
    assert "Customer: Grace Evans" in all_text(at)
    at.selectbox(key="wb.search.in").select("Shop")
    at = ok(at.run())
    assert search_fields(at) == {"email": GRACE.emails[0], "phone": "", "orderNumber": ""}
    assert search_field(at, "orderNumber").label == "Order Number"
    at = ok(at.button(key="wb.search.submit").click().run())
    table = results(at)
    assert list(table.columns) == ["Systems", "Name", "Email", "Phone", "Customer since",
                                   "Orders"]
    assert len(table) == 2 and set(table["Systems"]) == {"Shop"}
    at = select_row_0(at)
    choice = system_picker(at)
    assert choice.options[0].startswith("Shop · shop-")
    external_id = choice.options[0].split(" · ")[1]
    at = ok(at.button(key="wb.link.submit").click().run())
    assert any(s.startswith(f"Linked to Shop (external id {external_id}).")
               for s in texts(at.success)), texts(at.success)
    view = seeded.customers.get(SYSTEM, customer_id(seeded, GRACE.emails[0]))
    assert [(link.integration_name, link.external_customer_id, link.method, link.created_by)
            for link in view.links] == [("Shop", external_id, "manual", f"{role}-user")]
    assert f"**Shop** · external id `{external_id}`" in all_text(at)


def test_search_all_unlinked_names_the_failing_system_and_shows_the_others(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    at = find(workbench("agent"), "Email", GRACE.emails[0])
    assert at.selectbox(key="wb.search.in").value == "All unlinked external systems"
    at = ok(at.button(key="wb.search.submit").click().run())
    warnings = texts(at.warning)
    assert any(w.startswith("Broken shop could not be searched: http_status") and "exchange "
               in w for w in warnings), warnings
    table = results(at)
    assert len(table) == 2 and set(table["Systems"]) == {"Shop"}
    assert not any("Sorry, search is not working" in e for e in texts(at.error))
    summary = next(c for c in texts(at.caption) if "result(s) from" in c)
    assert "Broken shop" not in summary and "Shop" in summary, summary


def test_results_disappear_when_the_search_target_changes(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    at = find(workbench("agent"), "Email", GRACE.emails[0])
    at = ok(at.button(key="wb.search.submit").click().run())
    assert results_keys(at)
    at.selectbox(key="wb.search.in").select("Shop")
    at = ok(at.run())
    assert not results_keys(at)
    assert not any("could not be searched" in w for w in texts(at.warning))


def test_admin_opens_the_failing_exchange_in_place_and_an_agent_sees_its_id(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    for role, may_read in (("admin", True), ("agent", False)):
        at = find(workbench(role), "Email", GRACE.emails[0])
        at = ok(at.button(key="wb.search.submit").click().run())
        labels = [shown(e.label) for e in at.expander if e.label.startswith("Exchange ")]
        assert bool(labels) is may_read, (role, labels)
        links = [e.proto.label for e in at.get("page_link")]
        asks = [c for c in texts(at.caption) if "ask an admin or a developer" in c]
        assert bool(links) is may_read and bool(asks) is not may_read, (role, links, asks)
        if may_read:
            assert links[0].startswith("Open exchange ") and links[0].endswith(
                " in the exchange log")
        if may_read:
            assert "Broken shop, http_status" in labels[0]
            codes = [c.value for c in at.code]
            assert any(c.startswith("HTTP 503") for c in codes), codes  # the response side
            assert any(c.startswith("POST http://127.0.0.1:") for c in codes), codes


def test_search_where_every_system_fails_says_search_is_not_working(
        workbench: Callable[[str], AppTest]) -> None:
    at = find(workbench("agent"), "Email", GRACE.emails[0])
    at.selectbox(key="wb.search.in").select("Broken shop")
    at = ok(at.run())
    at = ok(at.button(key="wb.search.submit").click().run())
    errors = texts(at.error)
    assert len(errors) == 1 and errors[0].startswith("Sorry, search is not working right now")
    assert "Broken shop failed (http_status" in errors[0]
    assert not [frame for frame in frames(at) if "Systems" in frame]


def test_unlink_one_system_after_confirmation_then_allow_auto_linking_again(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    loyalty = integration_id(seeded, "Loyalty")
    at = find(workbench("agent"), "Email", JUN.emails[0])
    at = ok(at.button(key=f"wb.unlink.{loyalty}").click().run())
    assert any("from **Loyalty**" in m for m in texts(at.markdown)), "dialog not open"
    cid = customer_id(seeded, JUN.emails[0])
    assert len(seeded.customers.get(SYSTEM, cid).links) == 2  # nothing happened yet
    at = ok(at.button(key=f"wb.unlink.{loyalty}.yes").click().run())
    assert "Unlinked from Loyalty; auto-linking to it is off for this profile." in texts(
        at.success)
    view = seeded.customers.get(SYSTEM, cid)
    assert [link.integration_name for link in view.links] == ["Shop"]
    assert [s.integration_name for s in view.suppressions] == ["Loyalty"]
    at = ok(at.button(key=f"wb.card.allow.{loyalty}").click().run())
    assert any(s.startswith("Auto-linking to Loyalty is allowed again") for s in
               texts(at.success))
    assert seeded.customers.get(SYSTEM, cid).suppressions == ()


def test_unlink_customer_from_all_systems_after_confirmation(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    at = find(workbench("agent"), "Email", JUN.emails[0])
    at = ok(at.button(key="wb.unlink_all").click().run())
    at = ok(at.button(key="wb.unlink_all.no").click().run())
    cid = customer_id(seeded, JUN.emails[0])
    assert len(seeded.customers.get(SYSTEM, cid).links) == 2  # cancelled
    at = ok(at.button(key="wb.unlink_all").click().run())
    at = ok(at.button(key="wb.unlink_all.yes").click().run())
    assert any(s.startswith("Unlinked from 2 system(s)") for s in texts(at.success))
    assert seeded.customers.get(SYSTEM, cid).links == ()
    assert "Not linked to any external system." in all_text(at)


def test_refresh_a_linked_system(workbench: Callable[[str], AppTest], seeded: Services) -> None:
    shop = integration_id(seeded, "Shop")
    at = find(workbench("admin"), "Email", JUN.emails[0])
    at = ok(at.button(key=f"wb.refresh.{shop}").click().run())
    assert any(s.startswith("Refreshed Shop: 3 custom attributes") for s in texts(at.success)), (
        texts(at.success))


def test_find_by_name_lists_matches_with_open_buttons(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    at = find(workbench("agent"), "Name", "N")
    keys = keys_of(at)
    jun, grace = (customer_id(seeded, c.emails[0]) for c in (JUN, GRACE))
    assert {f"wb.open.{jun}", f"wb.open.{grace}"} <= keys
    at = ok(at.button(key=f"wb.open.{grace}").click().run())
    text = all_text(at)
    assert "Customer: Grace Evans" in text
    assert "Not linked to any external system." in text


# -- what is shown belongs to the open profile and to the action that produced it -----------------


def test_the_search_fields_hold_the_open_profiles_values_under_new_keys(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    at = find(workbench("agent"), "Email", GRACE.emails[0])
    at.selectbox(key="wb.search.in").select("Shop")
    at = ok(at.run())
    grace_keys = {str(t.key) for t in at.text_input if str(t.key).startswith("wb.search.")}
    at = ok(at.button(key="wb.search.submit").click().run())
    at = select_row_0(at)
    assert system_picker(at) is not None
    at = find(at, "Email", JUN.emails[0])
    assert "Customer: Jun Martin" in all_text(at)
    at.selectbox(key="wb.search.in").select("Shop")
    at = ok(at.run())
    assert search_fields(at) == {"email": JUN.emails[0], "phone": JUN.phones[0][0],
                                 "orderNumber": ""}
    # New keys: a browser holding Grace's values under the old ones never sends them here.
    jun_keys = {str(t.key) for t in at.text_input if str(t.key).startswith("wb.search.")}
    assert not jun_keys & grace_keys
    assert not results_keys(at)
    assert not [s for s in at.selectbox if str(s.key).startswith("wb.link.system.")]


def test_each_search_gets_a_results_table_of_its_own(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    at = find(workbench("agent"), "Email", GRACE.emails[0])
    at = ok(at.button(key="wb.search.submit").click().run())
    at = select_row_0(at)
    [first] = results_keys(at)
    at = ok(at.button(key="wb.search.submit").click().run())
    [second] = results_keys(at)
    assert second != first  # a fresh table: the earlier selection cannot apply to it
    assert not [s for s in at.selectbox if str(s.key).startswith("wb.link.system.")]


def opening_shown(at: AppTest) -> list[str]:
    """What opening the profile said (its captions)."""
    return [c for c in texts(at.caption)
            if c.startswith(("Opened: ", "Done by the system because you opened"))]


def test_created_is_no_longer_shown_after_unlink_all(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    at = workbench("agent")
    at.text_input(key="wb.create.name").input("Dmitri Lopez")
    at.text_input(key="wb.create.email").input("dmitri.lopez@example.com")
    at = ok(at.button(key="wb.create.submit").click().run())
    assert any(s.startswith("Created Dmitri Lopez.") for s in texts(at.success))
    at = ok(at.button(key="wb.unlink_all").click().run())
    at = ok(at.button(key="wb.unlink_all.yes").click().run())
    assert any(s.startswith("Unlinked from 1 system(s)") for s in texts(at.success))
    assert not any(s.startswith("Created ") for s in texts(at.success)), texts(at.success)
    assert not [frame for frame in frames(at) if "Outcome" in frame]


def refresh_shop(at: AppTest, services: Services) -> AppTest:
    return ok(at.button(key=f"wb.refresh.{integration_id(services, 'Shop')}").click().run())


def unlink_loyalty(at: AppTest, services: Services) -> AppTest:
    loyalty = integration_id(services, "Loyalty")
    at = ok(at.button(key=f"wb.unlink.{loyalty}").click().run())
    return ok(at.button(key=f"wb.unlink.{loyalty}.yes").click().run())


def allow_loyalty_again(at: AppTest, services: Services) -> AppTest:
    return ok(at.button(key=f"wb.card.allow.{integration_id(services, 'Loyalty')}")
              .click().run())


@pytest.mark.parametrize("action", [refresh_shop, unlink_loyalty, allow_loyalty_again])
def test_what_opening_did_is_no_longer_shown_after_an_action(
        workbench: Callable[[str], AppTest], seeded: Services,
        action: Callable[[AppTest, Services], AppTest]) -> None:
    if action is allow_loyalty_again:
        seeded.linking.unlink(SYSTEM, customer_id(seeded, JUN.emails[0]),
                              integration_id(seeded, "Loyalty"))
    at = find(workbench("agent"), "Email", JUN.emails[0])
    assert opening_shown(at)
    at = action(at, seeded)
    assert texts(at.success), "the action said nothing"
    assert not opening_shown(at), opening_shown(at)


def test_what_opening_did_is_no_longer_shown_after_a_link(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    at = find(workbench("agent"), "Email", GRACE.emails[0])
    assert opening_shown(at)
    at.selectbox(key="wb.search.in").select("Shop")
    at = ok(at.run())
    at = ok(at.button(key="wb.search.submit").click().run())
    at = select_row_0(at)
    assert opening_shown(at)  # a search is no action on the profile
    at = ok(at.button(key="wb.link.submit").click().run())
    assert any(s.startswith("Linked to Shop") for s in texts(at.success)), texts(at.success)
    assert not opening_shown(at), opening_shown(at)


def test_a_link_that_collides_says_why_beside_link_once(
        workbench: Callable[[str], AppTest], seeded: Services) -> None:
    # Link writes in the button's callback: its error is shown by the run that follows the
    # click, where Link is (the results stay), and not again on a later run.
    at = find(workbench("agent"), "Email", GRACE.emails[0])
    at.selectbox(key="wb.search.in").select("Shop")
    at = ok(at.button(key="wb.search.submit").click().run())
    at = select_row_0(at)
    external_id = system_picker(at).options[0].split(" · ")[1]
    other = seeded.customers.create(SYSTEM, "Someone Else", []).customer.id
    seeded.linking.link(Actor("admin-user", Role.ADMIN), other, integration_id(seeded, "Shop"),
                        external_id)
    at = ok(at.button(key="wb.link.submit").click().run())
    assert texts(at.error) == [f"external record {external_id} is already linked to Someone "
                               f"Else (id {other}) in Shop; unlink it there first"]
    assert not at.success
    assert len(results_keys(at)) == 1
    at = ok(at.run())
    assert not at.error
