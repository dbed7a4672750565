"""Forms prefilled from a selection, in a real browser on the seeded demo: choosing one
integration, then another, shows the second one's settings (never the first one's), and a
message stays with the action that produced it.

Places checked: the Integrations page's edit form (every prefilled field, its auto-linking
fields included) and the Auto-linking page's per-integration toggle and fields.
"""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from linker.core.permissions import SYSTEM
from linker.demo import DEMO_ACCOUNTS
from linker.services.integrations import IntegrationService, IntegrationView
from tests.e2e import browser as e2e

ADMIN = next(a for a in DEMO_ACCOUNTS if a.username == "admin")
FIELD_LABELS = {"email": "Email", "mobile": "Mobile phone"}


def demo_integrations(site: e2e.DemoSite) -> dict[str, IntegrationView]:
    """The stored integrations of the running demo, by name."""
    with e2e.demo_db(site) as ctx:
        return {view.name: view for view in IntegrationService(ctx).list(SYSTEM)}


def choose_integration(page: Page, name: str) -> None:
    """Pick ``name`` in the Integrations page's picker and wait for its heading."""
    picker = page.locator(e2e.key_class("integrations.selected"))
    picker.get_by_role("combobox").click()
    page.get_by_role("option", name=re.compile(rf"^{re.escape(name)}( \(inactive\))?$")).click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    e2e.wait_for_app(page)


def chosen_fields(widget: Locator) -> Locator:
    """The chips of a multiselect (one per chosen option)."""
    return widget.locator("[data-tag]")


def expect_edit_form_of(page: Page, view: IntegrationView) -> None:
    """The edit form shows ``view``'s own settings, field by field."""
    form = page.locator(e2e.key_class(f"integ.{view.id}.container"))
    expect(form.get_by_role("heading", name=f"Edit {view.name}")).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    expect(form.get_by_role("textbox", name="Name", exact=True)).to_have_value(view.name)
    expect(form.get_by_role("textbox", name="Adaptor URL")).to_have_value(view.url)
    expect(form.get_by_role("textbox", name="Basic auth username")).to_have_value(
        view.username or "")
    expect(form.get_by_role("switch", name="Auto-linking")).to_be_checked(
        checked=view.autolink_enabled)
    fields = form.locator(e2e.key_class(f"integ.{view.id}.autolink_fields"))
    expect(chosen_fields(fields)).to_have_text(
        [FIELD_LABELS.get(f, f) for f in view.autolink_fields])


def test_the_edit_form_shows_the_chosen_integration_not_the_previous_one(
        page: Page, demo_site: e2e.DemoSite) -> None:
    views = demo_integrations(demo_site)
    first, second = views["Loyalty"], views["Travel"]
    assert (first.username, first.autolink_fields) != (second.username, second.autolink_fields)
    e2e.sign_in_as(page, demo_site, ADMIN)
    e2e.open_page(page, "Integrations")
    choose_integration(page, first.name)
    expect_edit_form_of(page, first)
    choose_integration(page, second.name)
    expect_edit_form_of(page, second)
    choose_integration(page, first.name)
    expect_edit_form_of(page, first)


def test_the_autolinking_rows_show_each_integration_s_own_fields(
        page: Page, demo_site: e2e.DemoSite) -> None:
    views = demo_integrations(demo_site)
    e2e.sign_in_as(page, demo_site, ADMIN)
    e2e.open_page(page, "Integrations")
    choose_integration(page, "Loyalty")  # an edit form prefilled first, then the other page
    e2e.open_page(page, "Auto-linking")
    for view in views.values():
        row = page.locator(e2e.key_class(f"autolink.row.{view.id}"))
        expect(row.get_by_role("switch", name="Auto-linking")).to_be_checked(
            checked=view.autolink_enabled, timeout=e2e.TIMEOUT_MS)
        fields = row.locator(e2e.key_class(f"autolink.fields.{view.id}"))
        expect(chosen_fields(fields)).to_have_text(
            [FIELD_LABELS.get(f, f) for f in view.autolink_fields])


def test_fields_changed_on_autolinking_show_in_the_edit_form(
        page: Page, demo_site: e2e.DemoSite) -> None:
    travel = demo_integrations(demo_site)["Travel"]
    assert travel.autolink_fields == ("mobile",)
    e2e.sign_in_as(page, demo_site, ADMIN)
    e2e.open_page(page, "Integrations")
    choose_integration(page, travel.name)
    expect_edit_form_of(page, travel)
    try:
        add_email_on_autolinking(page, travel)
        e2e.open_page(page, "Integrations")
        choose_integration(page, travel.name)
        expect_edit_form_of(page, demo_integrations(demo_site)["Travel"])
    finally:
        restore_travel(page, demo_site, travel)


def add_email_on_autolinking(page: Page, view: IntegrationView) -> None:
    """On the Auto-linking page: add Email to ``view``'s fields (it has Mobile phone)."""
    e2e.open_page(page, "Auto-linking")
    row = page.locator(e2e.key_class(f"autolink.row.{view.id}"))
    box = row.locator(e2e.key_class(f"autolink.fields.{view.id}")).get_by_role("combobox")
    box.click()
    box.press_sequentially("Email")
    box.press("Enter")
    expect(e2e.flash(page, f"Auto-linking to {view.name} is on (Mobile phone, Email).")
           ).to_be_visible(timeout=e2e.TIMEOUT_MS)
    e2e.wait_for_app(page)
    page.keyboard.press("Escape")


def restore_travel(page: Page, site: e2e.DemoSite, view: IntegrationView) -> None:
    """Give ``view`` back its demo fields (Mobile phone only) through the Auto-linking page,
    so the dashboard drops its cached settings too (a write from this process would not)."""
    with e2e.demo_db(site) as ctx:
        IntegrationService(ctx).set_autolink(SYSTEM, view.id, True, ["mobile"])
    e2e.open_page(page, "Auto-linking")
    row = page.locator(e2e.key_class(f"autolink.row.{view.id}"))
    remove = row.get_by_role("button", name="Remove Email")
    if remove.count():
        remove.click()
        expect(e2e.flash(page, f"Auto-linking to {view.name} is on (Mobile phone).")
               ).to_be_visible(timeout=e2e.TIMEOUT_MS)
        e2e.wait_for_app(page)


def test_the_edit_form_follows_a_change_saved_in_another_tab(
        page: Page, demo_site: e2e.DemoSite) -> None:
    travel = demo_integrations(demo_site)["Travel"]
    e2e.sign_in_as(page, demo_site, ADMIN)
    e2e.open_page(page, "Integrations")
    choose_integration(page, travel.name)
    expect_edit_form_of(page, travel)
    other = page.context.new_page()  # the same admin, in another tab
    try:
        other.goto(demo_site.url)
        e2e.wait_for_app(other)
        add_email_on_autolinking(other, travel)
        page.bring_to_front()
        rerun_integrations_page(page, travel)
        expect_edit_form_of(page, demo_integrations(demo_site)["Travel"])
    finally:
        restore_travel(other, demo_site, travel)
        other.close()


def test_the_autolinking_row_follows_a_change_saved_in_another_tab(
        page: Page, demo_site: e2e.DemoSite) -> None:
    travel = demo_integrations(demo_site)["Travel"]
    e2e.sign_in_as(page, demo_site, ADMIN)
    e2e.open_page(page, "Auto-linking")
    row = page.locator(e2e.key_class(f"autolink.row.{travel.id}"))
    fields = row.locator(e2e.key_class(f"autolink.fields.{travel.id}"))
    expect(chosen_fields(fields)).to_have_text(["Mobile phone"], timeout=e2e.TIMEOUT_MS)
    other = page.context.new_page()  # the same admin, in another tab
    try:
        other.goto(demo_site.url)
        e2e.wait_for_app(other)
        add_email_on_autolinking(other, travel)
        page.bring_to_front()
        window = page.locator(e2e.key_class("outcomes.window")).get_by_role("combobox")
        window.click()  # any rerun of the page: another time window of the outcomes
        window.press_sequentially("Last 30")
        window.press("Enter")
        expect(window).to_have_value("Last 30 days", timeout=e2e.TIMEOUT_MS)
        e2e.wait_for_app(page)
        expect(row.get_by_text(re.compile("one of its emails equals"))).to_be_visible(
            timeout=e2e.TIMEOUT_MS)
        expect(chosen_fields(fields)).to_have_text(["Email", "Mobile phone"])
    finally:
        restore_travel(other, demo_site, travel)
        other.close()


def rerun_integrations_page(page: Page, view: IntegrationView) -> None:
    """Rerun the Integrations page without leaving ``view`` (a Test email typed, then left)."""
    test_email = page.locator(e2e.key_class(f"integ.test.{view.id}.email")).get_by_role("textbox")
    test_email.fill("someone@example.com")
    test_email.press("Tab")
    e2e.wait_for_app(page)
