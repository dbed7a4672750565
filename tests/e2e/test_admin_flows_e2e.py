"""The admin in a real browser: adds an integration for a reference adaptor that is running
(started here, beside the demo's), tests the connection, then turns auto-linking on for it on
the Auto-linking page and sees it on.

Set LINKER_SCREENSHOTS=1 to save ``docs/screenshots/integrations.png`` and ``autolinking.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from linker.adaptor import BackgroundServer, load_dataset
from linker.core.permissions import SYSTEM
from linker.demo import DEMO_ACCOUNTS, DEMO_DATASET_SIZE
from linker.services.integrations import IntegrationService
from tests.e2e import browser as e2e

ADMIN = next(a for a in DEMO_ACCOUNTS if a.username == "admin")
NEW_NAME = "Travel partner"
NEW_KEY = "e2e-travel-partner-signing-key"
TRAVEL = load_dataset("travel", DEMO_DATASET_SIZE)
PROBE = next(r for r in TRAVEL.records if r.emails
             and len(TRAVEL.search(emails=[r.emails[0]])) == 1)
"""A Travel record the connection test asks for by email (exactly one answer expected)."""


@pytest.fixture
def fresh_adaptor(demo_site: e2e.DemoSite) -> Iterator[BackgroundServer]:
    """A Travel reference adaptor (signed) no integration points at yet; the integration the
    flow adds for it is deleted afterwards, so later flows see the demo's integrations only."""
    with e2e.adaptor_server(TRAVEL, signing_key=NEW_KEY) as server:
        try:
            yield server
        finally:
            with e2e.demo_db(demo_site) as ctx:
                service = IntegrationService(ctx)
                for view in service.list(SYSTEM):
                    if view.name == NEW_NAME:
                        service.delete(SYSTEM, view.id)


def test_admin_adds_an_integration_tests_it_and_turns_on_autolinking(
        page: Page, demo_site: e2e.DemoSite, fresh_adaptor: BackgroundServer) -> None:
    e2e.sign_in_as(page, demo_site, ADMIN)
    e2e.open_page(page, "Integrations")
    page.get_by_role("button", name=re.compile("Add an integration$")).click()
    form = page.locator(e2e.key_class("integ.new.container"))
    expect(form.get_by_role("heading", name="Add an integration")).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    e2e.wait_for_app(page)
    form.get_by_role("textbox", name="Name", exact=True).fill(NEW_NAME)
    form.get_by_role("textbox", name="Adaptor URL").fill(fresh_adaptor.url)
    form.get_by_role("textbox", name="Signing key").fill(NEW_KEY)
    form.get_by_role("button", name="Add integration").click()
    expect(e2e.flash(page, f"Added {NEW_NAME}.")).to_be_visible(timeout=e2e.TIMEOUT_MS)
    e2e.wait_for_app(page)
    with e2e.demo_db(demo_site) as ctx:
        added = e2e.integration(ctx, NEW_NAME)
    assert added.url == fresh_adaptor.url and added.signing_key_set
    assert not added.autolink_enabled

    # The new integration is the one shown: test its connection with a known email.
    expect(page.get_by_role("heading", name=NEW_NAME, exact=True)).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    test = f"integ.test.{added.id}"
    page.locator(e2e.key_class(f"{test}.email")).get_by_role("textbox").fill(PROBE.emails[0])
    page.locator(e2e.key_class(f"{test}.run")).get_by_role("button").click()
    expect(page.get_by_text(re.compile(
        rf"^{re.escape(NEW_NAME)} answered in .+ with 1 result\(s\)\.$"))).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    e2e.wait_for_app(page)
    e2e.refresh_screenshot(page, "integrations.png")

    # Auto-linking: choose the field, then switch it on.
    e2e.open_page(page, "Auto-linking")
    row = page.locator(e2e.key_class(f"autolink.row.{added.id}"))
    expect(row.get_by_text(f"Auto-linking to {NEW_NAME} is off")).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    fields = row.locator(e2e.key_class(f"autolink.fields.{added.id}")).get_by_role("combobox")
    fields.click()
    fields.press_sequentially("Email")
    fields.press("Enter")
    expect(e2e.flash(page, f"Auto-linking to {NEW_NAME} is off (Email).")).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    e2e.wait_for_app(page)
    page.keyboard.press("Escape")
    toggle = row.get_by_role("switch", name="Auto-linking")
    expect(toggle).not_to_be_checked()
    row.get_by_text("Auto-linking", exact=True).click()  # the label: the input sits under it
    expect(e2e.flash(page, f"Auto-linking to {NEW_NAME} is on (Email).")).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    e2e.wait_for_app(page)
    expect(toggle).to_be_checked()
    expect(row.get_by_text(re.compile(
        rf"^When a profile is created, or an unlinked profile is opened, Linker asks "
        rf"{re.escape(NEW_NAME)} for that person and links the profile when exactly one record "
        r"comes back and one of its emails equals one of the profile's emails"))).to_be_visible()
    e2e.refresh_screenshot(page, "autolinking.png")

    # It stays on: a fresh load of the page reads the stored settings.
    page.reload()
    e2e.wait_for_app(page)
    row = page.locator(e2e.key_class(f"autolink.row.{added.id}"))
    expect(row.get_by_role("switch", name="Auto-linking")).to_be_checked(timeout=e2e.TIMEOUT_MS)
    with e2e.demo_db(demo_site) as ctx:
        stored = e2e.integration(ctx, NEW_NAME)
    assert stored.autolink_enabled and stored.autolink_fields == ("email",)
