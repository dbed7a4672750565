"""The Link workbench in a real browser: an agent signs in, finds a customer, searches every
unlinked system, picks a result in the (canvas) table and links it.

Set LINKER_SCREENSHOTS=1 to save ``docs/screenshots/workbench.png`` for the README.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from linker.adaptor import load_dataset
from linker.demo import DEMO_ACCOUNTS, DEMO_DATASET_SIZE, demo_customers
from tests.e2e.conftest import CHROMIUM, CHROMIUM_MISSING, DemoSite

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM.exists(),
                                                  reason=CHROMIUM_MISSING)]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshots" / "workbench.png"
AGENT = next(a for a in DEMO_ACCOUNTS if a.username == "agent")
LEAD = next(a for a in DEMO_ACCOUNTS if a.username == "lead")
_SHOP = load_dataset("shop", DEMO_DATASET_SIZE)
AMBIGUOUS = next(c for c in demo_customers() if c.kind == "duplicate_email")
AMBIGUOUS_EMAIL = AMBIGUOUS.emails[0]
"""A seeded customer whose email two Shop accounts share: auto-linking left them unlinked."""
TIMEOUT_MS = 30_000


def wait_for_app(page: Page) -> None:
    """Wait until the app is connected and no script run is in progress (Streamlit's own e2e
    rule); callers then wait for the element they expect."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']",
                           timeout=TIMEOUT_MS)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']",
                           timeout=TIMEOUT_MS)


def sign_in(page: Page, site: DemoSite, username: str, password: str) -> None:
    """Sign in through the form, land on Health, and open the Link workbench."""
    page.goto(site.url)
    wait_for_app(page)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    wait_for_app(page)
    page.get_by_role("link", name="Link workbench").click()
    expect(page.get_by_role("heading", name="Link workbench")).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)


def find_customer(page: Page, query: str, name: str) -> None:
    """Find by email; a single match opens the profile."""
    page.get_by_label("Email, phone or name").fill(query)
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page.get_by_role("heading", name=f"Customer: {name}")).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)


def test_agent_links_a_customer_to_a_search_result(page: Page, demo_site: DemoSite) -> None:
    assert AMBIGUOUS_EMAIL in demo_site.report.customer_ids
    sign_in(page, demo_site, AGENT.username, AGENT.password)
    find_customer(page, AMBIGUOUS_EMAIL, AMBIGUOUS.name)
    expect(page.get_by_text("Not linked to any external system.")).to_be_visible()

    # Search In defaults to all unlinked systems; the fields are prefilled from the profile.
    linking = page.locator(".st-key-wb-link_section")
    expect(linking.get_by_role("textbox", name="Email", exact=True)).to_have_value(
        AMBIGUOUS_EMAIL)
    expect(linking.get_by_role("textbox", name="Order Number")).to_be_visible()
    linking.locator(".st-key-wb-search-submit button").click()
    results = linking.locator(".st-key-wb-results [data-testid='stDataFrame']")
    expect(results).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)

    # The table is a canvas: click row 0's selection checkbox.
    box = results.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)
    system = page.get_by_label("System to link")
    expect(system).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    page.get_by_role("button", name="Link", exact=True).click()

    expect(page.get_by_text("Linked to Shop (external id shop-")).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)
    # st.badge with a tooltip renders its label twice; the first is the visible icon.
    icon = page.locator(".st-key-wb-card-card").get_by_text("linked").first
    expect(icon).to_be_visible()
    linked_text = page.get_by_text(re.compile(r"Linked to Shop \(external id shop-\d+")).first
    external_id = re.search(r"shop-\d+", linked_text.inner_text())
    assert external_id is not None
    record = _SHOP.get(external_id.group(0))
    assert record is not None
    orders = sum(t.get("type") == "ORDER" for t in record.transactions)
    if orders:  # the pulled orders are on the card
        expect(page.get_by_text(re.compile(rf"^{orders} Orders?$"))).to_be_visible()
    else:  # a duplicate account without orders: its detailed data was fetched
        expect(page.get_by_text(re.compile(r"^Fetched \d{4}-")).first).to_be_visible()
    if os.environ.get("LINKER_SCREENSHOTS") == "1":
        save_screenshot(page)
    icon.hover()
    expect(page.get_by_text("Linked to Shop: external id shop-")).to_be_visible(
        timeout=TIMEOUT_MS)


def save_screenshot(page: Page) -> None:
    """The whole workbench in one image (Streamlit scrolls inside its main area, so the
    window is made tall enough instead of using a full-page capture)."""
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size({"width": 1440, "height": 2400})
    wait_for_app(page)
    page.evaluate("document.querySelectorAll('*').forEach(e => { if (e.scrollTop) "
                  "e.scrollTop = 0; })")
    page.screenshot(path=str(SCREENSHOT))
    if size is not None:
        page.set_viewport_size(size)


def test_support_lead_reads_without_edit_controls(page: Page, demo_site: DemoSite) -> None:
    sign_in(page, demo_site, LEAD.username, LEAD.password)
    expect(page.get_by_text("Read-only")).to_be_visible()
    find_customer(page, "jun.martin@example.com", "Jun Martin")
    expect(page.get_by_role("heading", name="Linked systems")).to_be_visible()
    # A table's own toolbar (shown on hover) has a "Search" button too: it changes nothing.
    not_toolbar = page.locator(":not([data-testid='stBaseButton-elementToolbar'])")
    for label in ("Search", "Refresh", "Unlink", "Unlink customer", "Create and auto-link"):
        controls = page.get_by_role("button", name=label, exact=True).and_(not_toolbar)
        expect(controls).to_have_count(0)


def test_a_reload_keeps_the_user_signed_in_until_sign_out(page: Page,
                                                          demo_site: DemoSite) -> None:
    sign_in(page, demo_site, AGENT.username, AGENT.password)
    expect(page.get_by_text("Role: agent")).to_be_visible(timeout=TIMEOUT_MS)
    # The session cookie is written by a script the page runs after it renders: wait for it.
    page.wait_for_function("document.cookie.includes('linker_session=')", timeout=TIMEOUT_MS)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert "linker_session" in cookies and AGENT.password not in cookies["linker_session"]
    page.reload()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Link workbench")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("Role: agent")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Sign out").click()
    wait_for_app(page)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
    page.reload()
    wait_for_app(page)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
