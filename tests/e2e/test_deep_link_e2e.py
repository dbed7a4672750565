"""A bookmarked page address opened while signed out, in a real browser on the seeded demo:
the sign-in form shows at that address, and signing in opens that page with its query."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from linker.demo import DEMO_ACCOUNTS, DemoAccount
from tests.e2e.conftest import CHROMIUM, CHROMIUM_MISSING, DemoSite
from tests.e2e.test_workbench_e2e import TIMEOUT_MS, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM.exists(),
                                                  reason=CHROMIUM_MISSING)]

DEVELOPER = next(a for a in DEMO_ACCOUNTS if a.username == "developer")
AGENT = next(a for a in DEMO_ACCOUNTS if a.username == "agent")
EXCHANGE_ID = 5
"""An exchange of the demo's seeded month of history."""


def sign_in_here(page: Page, account: DemoAccount) -> None:
    """Fill and submit the sign-in form shown at the current address."""
    page.get_by_role("textbox", name="Username").fill(account.username)
    page.get_by_role("textbox", name="Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign in")).to_have_count(0, timeout=TIMEOUT_MS)
    wait_for_app(page)


def test_a_bookmarked_exchange_opens_in_the_debugger_after_sign_in(
        page: Page, demo_site: DemoSite) -> None:
    page.context.clear_cookies()
    page.goto(f"{demo_site.url}/debugger?exchange={EXCHANGE_ID}")
    wait_for_app(page)
    expect(page.get_by_text("Sign in to open Adaptor debugger.")).to_be_visible(
        timeout=TIMEOUT_MS)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_role("heading", name="Lookup Adaptor Debugger")).to_have_count(0)

    sign_in_here(page, DEVELOPER)
    expect(page.get_by_role("heading", name="Lookup Adaptor Debugger")).to_be_visible(
        timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name=f"Exchange {EXCHANGE_ID}")).to_be_visible(
        timeout=TIMEOUT_MS)
    assert re.search(rf"/debugger\?exchange={EXCHANGE_ID}$", page.url), page.url


def test_a_bookmark_the_role_may_not_open_lands_on_health_and_says_why(
        page: Page, demo_site: DemoSite) -> None:
    page.context.clear_cookies()
    page.goto(f"{demo_site.url}/integrations")
    wait_for_app(page)
    expect(page.get_by_text("Sign in to open Integrations.")).to_be_visible(timeout=TIMEOUT_MS)

    sign_in_here(page, AGENT)
    expect(page.get_by_role("heading", name="Health", exact=True)).to_be_visible(
        timeout=TIMEOUT_MS)
    expect(page.get_by_text(re.compile("may not open Integrations, the page you asked for"))
           ).to_be_visible(timeout=TIMEOUT_MS)


def sign_in_then_open(page: Page, site: DemoSite, account: DemoAccount, path: str) -> None:
    """Sign in at the console's root, then type ``path`` in the address bar (a new load of
    the page: the session cookie keeps the sign-in)."""
    page.context.clear_cookies()
    page.goto(site.url)
    wait_for_app(page)
    sign_in_here(page, account)
    expect(page.get_by_role("heading", name="Health", exact=True)).to_be_visible(
        timeout=TIMEOUT_MS)
    page.goto(f"{site.url}/{path}")
    wait_for_app(page)


def test_a_signed_in_deep_link_the_role_may_not_open_lands_on_health_and_says_why(
        page: Page, demo_site: DemoSite) -> None:
    sign_in_then_open(page, demo_site, AGENT, "debugger?exchange=5")
    expect(page.get_by_role("heading", name="Health", exact=True)).to_be_visible(
        timeout=TIMEOUT_MS)
    expect(page.get_by_text(re.compile("may not open Adaptor debugger, the page you asked for"))
           ).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_role("heading", name="Lookup Adaptor Debugger")).to_have_count(0)


@pytest.mark.parametrize("account", DEMO_ACCOUNTS, ids=lambda a: a.username)
def test_the_health_address_opens_health_for_every_role(page: Page, demo_site: DemoSite,
                                                        account: DemoAccount) -> None:
    sign_in_then_open(page, demo_site, account, "health")
    expect(page.get_by_role("heading", name="Health", exact=True)).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_text(re.compile("may not open"))).to_have_count(0)
