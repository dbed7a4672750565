"""The agent in a real browser, on the seeded demo: creates a customer who is auto-linked and
sees the orders on the card; searches every unlinked system while Flaky Shop fails and still
links from Loyalty; unlinks one system, then all.

Each flow gets people nobody in the demo database holds yet (``browser.free_records``), so the
flows do not depend on each other or on the order they run in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from linker.adaptor import Record, load_dataset
from linker.core.permissions import SYSTEM
from linker.demo import DEMO_ACCOUNTS, DEMO_DATASET_SIZE, DEMO_INTEGRATIONS
from linker.services.customers import CustomerService
from linker.services.integrations import IntegrationChanges, IntegrationService
from linker.store.models import Customer, Link
from tests.e2e.browser import (
    TIMEOUT_MS,
    adaptor_server,
    demo_db,
    flash,
    free_records,
    integration,
    key_class,
    open_page,
    wait_for_app,
)
from tests.e2e.conftest import CHROMIUM, CHROMIUM_MISSING, DemoSite
from tests.e2e.test_flows_e2e import click_first_row, sign_in_as

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM.exists(),
                                                  reason=CHROMIUM_MISSING)]

AGENT = next(a for a in DEMO_ACCOUNTS if a.username == "agent")
SHOP, LOYALTY = (load_dataset(name, DEMO_DATASET_SIZE) for name in ("shop", "loyalty"))
FLAKY = next(i for i in DEMO_INTEGRATIONS if i.key == "flaky")


def orders(record: Record) -> int:
    """How many orders a record's detailed answer carries."""
    return sum(t.get("type") == "ORDER" for t in record.transactions)


def open_workbench(page: Page, site: DemoSite) -> None:
    sign_in_as(page, site, AGENT)
    open_page(page, "Link workbench")


def find_customer(page: Page, email: str, name: str) -> None:
    """Find by email; the single match opens."""
    page.get_by_role("textbox", name="Email, phone or name").fill(email)
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page.get_by_role("heading", name=f"Customer: {name}")).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)


# -- create, auto-linked, orders on the card ------------------------------------------------------


@pytest.fixture
def new_shop_customer(demo_site: DemoSite) -> Record:
    """A Shop record with orders that no profile holds, under an email only Shop knows, of a
    person no profile is named after (so creating it looks like nobody already there)."""
    with demo_db(demo_site) as ctx:
        with ctx.db.session(readonly=True) as session:
            names = {n.casefold() for n in session.scalars(select(Customer.name))}
        return next(r for r in free_records(ctx, SHOP, "Shop") if orders(r)
                    and r.name.casefold() not in names
                    and not LOYALTY.search(emails=[r.emails[0]]))


def test_agent_creates_a_customer_who_is_auto_linked_and_sees_the_orders(
        page: Page, demo_site: DemoSite, new_shop_customer: Record) -> None:
    record = new_shop_customer
    email, count = record.emails[0], orders(record)
    open_workbench(page, demo_site)
    create = page.locator(key_class("wb.create.open"))
    create.get_by_text("New profile").click()
    create.get_by_role("textbox", name="Name", exact=True).fill(record.name)
    create.get_by_role("textbox", name="Email", exact=True).fill(email)
    create.get_by_role("button", name="Create and auto-link").click()

    expect(page.get_by_text(f"Created {record.name}. Auto-linked to Shop.")).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)
    with demo_db(demo_site) as ctx:
        shop = integration(ctx, "Shop")
    linked = page.locator(key_class(f"wb.linked.{shop.id}"))
    expect(linked.get_by_text(f"external id {record.external_customer_id}")).to_be_visible()
    expect(linked.get_by_text("auto-linked")).to_be_visible()

    # Open the card again from a search, as an agent would later: the orders are on it.
    page.locator(key_class("wb.close")).get_by_role("button").click()
    wait_for_app(page)
    find_customer(page, email, record.name)
    expect(page.locator(key_class("wb.card.card")).get_by_text(email)).to_be_visible()
    expect(linked.get_by_text(re.compile(rf"^{count} Orders?$"))).to_be_visible(
        timeout=TIMEOUT_MS)


# -- search all unlinked systems while Flaky Shop fails -------------------------------------------


@dataclass(frozen=True)
class LoyaltyOnly:
    """A profile nobody linked yet (its own email is unknown everywhere) and the Loyalty
    record of the same person, found by the email the person gives the agent."""

    customer_email: str
    record: Record


@pytest.fixture
def loyalty_only_customer(demo_site: DemoSite) -> LoyaltyOnly:
    """Created through the service: auto-linking finds nothing for its own email."""
    in_shop = SHOP.members()
    with demo_db(demo_site) as ctx:
        record = next(r for r in free_records(ctx, LOYALTY, "Loyalty")
                      if r.person_index not in in_shop and not SHOP.search(emails=[r.emails[0]]))
        alias = f"e2e.customer.{record.person_index}@mail.example"
        created = CustomerService(ctx).create(SYSTEM, record.name, [alias])
    assert not any(r.link_id for r in created.autolink), created.autolink
    return LoyaltyOnly(alias, record)


@pytest.fixture
def flaky_shop_failing(demo_site: DemoSite) -> Iterator[str]:
    """Shop (flaky) answers every lookup with HTTP 503 while the flow runs: its integration
    points at a copy of its adaptor with the ``status:503`` fault, then back."""
    with adaptor_server(SHOP, signing_key=FLAKY.signing_key, faults=["status:503"]) as failing, \
            demo_db(demo_site) as ctx:
        service = IntegrationService(ctx)
        flaky = integration(ctx, FLAKY.name)
        service.update(SYSTEM, flaky.id, IntegrationChanges(url=failing.url))
        try:
            yield FLAKY.name
        finally:
            service.update(SYSTEM, flaky.id, IntegrationChanges(url=flaky.url))


def test_agent_links_from_loyalty_while_flaky_shop_fails(
        page: Page, demo_site: DemoSite, loyalty_only_customer: LoyaltyOnly,
        flaky_shop_failing: str) -> None:
    record = loyalty_only_customer.record
    open_workbench(page, demo_site)
    find_customer(page, loyalty_only_customer.customer_email, record.name)
    expect(page.get_by_text("Not linked to any external system.")).to_be_visible()

    linking = page.locator(key_class("wb.link_section"))
    # Search In is left at its default, "All unlinked external systems".
    email = linking.locator(key_class("wb.search.field.email")).get_by_role("textbox")
    expect(email).to_have_value(loyalty_only_customer.customer_email)
    email.fill(record.emails[0])
    linking.locator(key_class("wb.search.submit")).get_by_role("button").click()

    failure = page.get_by_text(re.compile(
        rf"^{re.escape(flaky_shop_failing)} could not be searched: .*503"))
    expect(failure).to_be_visible(timeout=TIMEOUT_MS)
    expect(linking.get_by_text(re.compile(r"^1 result\(s\) from .*Loyalty"))).to_be_visible()
    click_first_row(page, "wb-results")
    system = page.get_by_role("combobox", name="System to link")
    expect(system).to_have_value(f"Loyalty · {record.external_customer_id}",
                                 timeout=TIMEOUT_MS)
    page.locator(key_class("wb.link.submit")).get_by_role("button").click()

    expect(flash(page, f"Linked to Loyalty (external id {record.external_customer_id}).")
           ).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    with demo_db(demo_site) as ctx:
        loyalty = integration(ctx, "Loyalty")
    expect(page.locator(key_class(f"wb.linked.{loyalty.id}"))).to_be_visible()


# -- unlink one system, then all ------------------------------------------------------------------


@dataclass(frozen=True)
class TwiceLinked:
    """A profile auto-linked to Shop and Loyalty."""

    customer_id: str
    name: str
    email: str


@pytest.fixture
def twice_linked_customer(demo_site: DemoSite) -> TwiceLinked:
    """Someone Shop and Loyalty both know by the same email, created through the service so
    auto-linking links both."""
    with demo_db(demo_site) as ctx:
        free_loyalty = {r.external_customer_id for r in free_records(ctx, LOYALTY, "Loyalty")}
        for record in free_records(ctx, SHOP, "Shop"):
            found = LOYALTY.search(emails=[record.emails[0]])
            if len(found) == 1 and found[0].external_customer_id in free_loyalty:
                break
        else:
            pytest.fail("no free person in both Shop and Loyalty")
        created = CustomerService(ctx).create(SYSTEM, record.name, [record.emails[0]])
    linked = {r.integration_name for r in created.autolink if r.link_id is not None}
    assert {"Shop", "Loyalty"} <= linked, created.autolink
    return TwiceLinked(created.customer.id, record.name, record.emails[0])


def test_agent_unlinks_one_system_then_all(page: Page, demo_site: DemoSite,
                                           twice_linked_customer: TwiceLinked) -> None:
    customer = twice_linked_customer
    with demo_db(demo_site) as ctx:
        shop, loyalty = integration(ctx, "Shop"), integration(ctx, "Loyalty")
    open_workbench(page, demo_site)
    find_customer(page, customer.email, customer.name)
    expect(page.locator(key_class(f"wb.linked.{shop.id}"))).to_be_visible()
    expect(page.locator(key_class(f"wb.linked.{loyalty.id}"))).to_be_visible()

    page.locator(key_class(f"wb.unlink.{loyalty.id}")).get_by_role("button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Unlink from Loyalty")).to_be_visible(timeout=TIMEOUT_MS)
    dialog.get_by_role("button", name="Yes, unlink").click()
    expect(flash(page, "Unlinked from Loyalty; auto-linking to it is off for this profile.")
           ).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    expect(page.locator(key_class(f"wb.linked.{loyalty.id}"))).to_have_count(0)
    expect(page.locator(key_class(f"wb.linked.{shop.id}"))).to_be_visible()

    with demo_db(demo_site) as ctx, ctx.db.session(readonly=True) as session:
        left = len(session.scalars(select(Link.id).where(
            Link.customer_id == customer.customer_id)).all())
    assert left >= 1
    page.locator(key_class("wb.unlink_all")).get_by_role("button").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Unlink from all systems")).to_be_visible(timeout=TIMEOUT_MS)
    expect(dialog.get_by_text(re.compile(r"from all systems \(.*Shop"))).to_be_visible()
    dialog.get_by_role("button", name="Yes, unlink from all").click()
    expect(flash(page, f"Unlinked from {left} system(s); auto-linking to them is off for this "
                       "profile.")).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    expect(page.get_by_text("Not linked to any external system.")).to_be_visible()
    with demo_db(demo_site) as ctx, ctx.db.session(readonly=True) as session:
        assert not session.scalars(select(Link.id).where(
            Link.customer_id == customer.customer_id)).all()
