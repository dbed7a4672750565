"""Stale state on the Link workbench, in a real browser (issue 22 §1): what the page shows for
one profile never carries over to the next one, nor past the action that produced it.

- Two customers in a row: the search fields hold the open profile's email and phone, and a
  search under the second never offers the first one's records (a data-protection defect:
  the browser kept the first profile's field values when the widget keys were not per
  profile).
- Unlink all: the contacts the unlinked system brought leave the card ("(from Shop)"), and
  what opening the profile did is no longer shown.

The customers are the demo's own (``demo_customers``), chosen so no other e2e module changes
them: A is a duplicate-email customer Shop holds twice (a search finds two records), B a
customer no system knows (a search finds nothing), C a customer Shop linked by mobile and
whose work email it added to the profile.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from linker.demo import DEMO_ACCOUNTS, DemoCustomer, demo_customers
from tests.e2e.browser import TIMEOUT_MS, key_class, wait_for_app
from tests.e2e.conftest import CHROMIUM, CHROMIUM_MISSING, DemoSite
from tests.e2e.test_flows_e2e import click_first_row
from tests.e2e.test_workbench_e2e import find_customer, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM.exists(),
                                                  reason=CHROMIUM_MISSING)]

AGENT = next(a for a in DEMO_ACCOUNTS if a.username == "agent")
_CUSTOMERS = demo_customers()
A = [c for c in _CUSTOMERS if c.kind == "duplicate_email"][-1]
"""Not the first duplicate: test_workbench_e2e links that one."""
B = [c for c in _CUSTOMERS if c.kind == "nobody" and c.emails and c.phones][-1]
C = [c for c in _CUSTOMERS if c.kind == "phone_only"][-1]


def search_field(page: Page, label: str) -> Locator:
    """A field of the "Link to external systems" search form, by its label."""
    return page.locator(key_class("wb.link_section")).get_by_role("textbox", name=label,
                                                                  exact=True)


def search(page: Page) -> None:
    """Press Search and wait for the run it starts."""
    page.locator(key_class("wb.link_section")).get_by_role(
        "button", name=re.compile("Search$")).click()
    wait_for_app(page)


def test_the_search_fields_and_results_belong_to_the_open_profile(
        page: Page, demo_site: DemoSite) -> None:
    assert A.emails[0] != B.emails[0]
    assert {A.emails[0], B.emails[0]} <= set(demo_site.report.customer_ids)
    sign_in(page, demo_site, AGENT.username, AGENT.password)

    find_customer(page, A.emails[0], A.name)
    expect(search_field(page, "Email")).to_have_value(A.emails[0])
    search(page)
    expect(page.get_by_text(re.compile(r"^2 result\(s\) from "))).to_be_visible(
        timeout=TIMEOUT_MS)
    click_first_row(page, "wb-results")
    expect(page.get_by_role("combobox", name="System to link")).to_be_visible(
        timeout=TIMEOUT_MS)

    find_customer(page, B.emails[0], B.name)
    expect(search_field(page, "Email")).to_have_value(B.emails[0])
    expect(search_field(page, "Phone")).to_have_value(B.phones[0][0])
    # A's results, their selection and the system picker are gone with A.
    expect(page.get_by_text(re.compile(r"result\(s\) from "))).to_have_count(0)
    expect(page.get_by_role("combobox", name="System to link")).to_have_count(0)

    search(page)
    expect(page.get_by_text(re.compile(r"^No match in "))).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text(re.compile(r"result\(s\) from "))).to_have_count(0)
    expect(page.locator(key_class("wb.link_section")).get_by_test_id("stDataFrame")
           ).to_have_count(0)
    expect(page.get_by_role("button", name="Link", exact=True)).to_have_count(0)


def pulled_contacts(page: Page) -> Locator:
    """The card's emails and phones that a linked system brought."""
    return page.locator(key_class("wb.card.card")).get_by_text(re.compile(r"\(from \w+"))


def test_unlink_all_takes_away_what_the_systems_brought_and_what_opening_did(
        page: Page, demo_site: DemoSite) -> None:
    customer: DemoCustomer = C
    sign_in(page, demo_site, AGENT.username, AGENT.password)
    find_customer(page, customer.emails[0], customer.name)
    expect(pulled_contacts(page).first).to_be_visible()
    opened = page.get_by_text(re.compile(
        r"^(Opened: linked data is fresh|Done by the system because you opened)"))
    expect(opened).to_be_visible()

    page.get_by_role("button", name="Unlink customer", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Yes, unlink from all").click()
    expect(page.get_by_text(re.compile(r"^Unlinked from \d+ system\(s\)"))).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)
    expect(page.get_by_text("Not linked to any external system.")).to_be_visible()
    expect(pulled_contacts(page)).to_have_count(0)
    card = page.locator(key_class("wb.card.card"))
    expect(card.get_by_text(customer.emails[0])).to_be_visible()  # typed by the agent: kept
    expect(opened).to_have_count(0)
