"""Role navigation and the adaptor debugger in a real browser, on the seeded demo.

Set LINKER_SCREENSHOTS=1 to save ``docs/screenshots/debugger.png`` for the README.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from dashboard.auth import pages_for
from linker.adaptor import BackgroundServer, Dataset, create_app, load_dataset
from linker.core.permissions import SYSTEM
from linker.demo import (
    DEMO_ACCOUNTS,
    DEMO_DATASET_SIZE,
    DEMO_INTEGRATIONS,
    DemoAccount,
    demo_customers,
    demo_settings,
    open_demo_context,
)
from linker.services.integrations import IntegrationService
from tests.e2e.conftest import CHROMIUM, CHROMIUM_MISSING, DemoSite
from tests.e2e.test_workbench_e2e import TIMEOUT_MS, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM.exists(),
                                                  reason=CHROMIUM_MISSING)]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DEVELOPER = next(a for a in DEMO_ACCOUNTS if a.username == "developer")
SHOP = load_dataset("shop", DEMO_DATASET_SIZE)
LINKED = next(c for c in demo_customers() if c.kind == "email_match"
              and sum(c.emails[0] in r.emails for r in SHOP.records) == 1)
"""A seeded customer Shop knows by email (so a Basic search finds one record)."""


def sign_in_as(page: Page, site: DemoSite, account: DemoAccount) -> None:
    """Sign in through the form and wait for the role's first page."""
    page.goto(site.url)
    wait_for_app(page)
    page.get_by_role("textbox", name="Username").fill(account.username)
    page.get_by_role("textbox", name="Password").fill(account.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign in")).to_have_count(0, timeout=TIMEOUT_MS)
    wait_for_app(page)


@pytest.mark.parametrize("account", DEMO_ACCOUNTS, ids=lambda a: a.username)
def test_each_role_sees_exactly_its_pages(page: Page, demo_site: DemoSite,
                                          account: DemoAccount) -> None:
    sign_in_as(page, demo_site, account)
    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
    expected = [spec.title for spec in pages_for(account.role)]
    if len(expected) == 1:  # Streamlit shows no menu for a single page: it is the one shown
        expect(page.get_by_role("heading", name=expected[0])).to_be_visible(
            timeout=TIMEOUT_MS)
        expect(links).to_have_count(0)
        return
    expect(links).to_have_count(len(expected))
    for link, title in zip(links.all(), expected, strict=True):
        # A link's text starts with the icon's ligature name; the title ends it.
        expect(link).to_have_text(re.compile(rf"{re.escape(title)}$"))


def click_first_row(page: Page, table_key: str) -> None:
    """Select row 0 of a (canvas) dataframe by clicking its checkbox."""
    table = page.locator(f".st-key-{table_key} [data-testid='stDataFrame'], "
                         f"[data-testid='stDataFrame'].st-key-{table_key}").first
    expect(table).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    box = table.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)
    wait_for_app(page)


def test_developer_runs_basic_detailed_then_replays_from_the_log(
        page: Page, demo_site: DemoSite) -> None:
    sign_in_as(page, demo_site, DEVELOPER)
    page.get_by_test_id("stSidebarNav").get_by_role(
        "link", name=re.compile("Adaptor debugger")).click()
    expect(page.get_by_role("heading", name="Lookup Adaptor Debugger")).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)

    page.get_by_role("textbox", name="Email").first.fill(LINKED.emails[0])
    page.get_by_role("button", name=re.compile("Find the profile")).click()
    wait_for_app(page)
    expect(page.get_by_text("Basic + Detailed")).to_be_visible(timeout=TIMEOUT_MS)
    page.locator(".st-key-dbg-integration").click()
    page.get_by_role("option", name="Shop", exact=True).click()
    wait_for_app(page)
    expect(page.get_by_role("textbox", name="Order Number")).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("button", name=re.compile("^.*Test$")).click()
    expect(page.get_by_role("heading", name=re.compile("^Step 1"))).to_be_visible(
        timeout=TIMEOUT_MS)
    expect(page.get_by_role("heading", name="What the profile would get")).to_be_visible()
    wait_for_app(page)
    expect(page.get_by_text(re.compile(r"^Record shop-\d+: "))).to_be_visible(
        timeout=TIMEOUT_MS)
    if os.environ.get("LINKER_SCREENSHOTS") == "1":
        save_screenshot(page, "debugger.png")

    # The newest exchange in the log is this run's Detailed lookup: open it and replay it.
    page.get_by_role("tab", name="Exchange log").click()
    wait_for_app(page)
    click_first_row(page, "log-table")
    heading = page.get_by_role("heading", name=re.compile(r"^Exchange \d+$"))
    expect(heading).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("button", name=re.compile("Replay now")).click()
    expect(page.get_by_role("heading", name=re.compile(r"^Replay: exchange \d+$"))).to_be_visible(
        timeout=TIMEOUT_MS)
    expect(page.get_by_text(re.compile(
        r"The response body is the same as the original's|difference\(s\) in the response "
        r"body"))).to_be_visible(timeout=TIMEOUT_MS)


SKELETON = "[data-testid='stSkeleton']:visible"
"""A grey placeholder: code blocks show one until their highlighter has loaded."""


def wait_for_rendered(page: Page) -> None:
    """Wait until the app is idle and no placeholder is showing (polled with a deadline)."""
    wait_for_app(page)
    expect(page.locator(SKELETON)).to_have_count(0, timeout=TIMEOUT_MS)


def save_screenshot(page: Page, name: str) -> None:
    """The page in one tall image for the README, once every code block has rendered."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size({"width": 1440, "height": 2000})
    wait_for_rendered(page)
    page.screenshot(path=str(SCREENSHOTS / name))
    if size is not None:
        page.set_viewport_size(size)


HOSTILE_HOST = "127.0.0.9"
"""The address the hostile adaptor's text points at (loopback: nothing listens there)."""
HOSTILE_NAME = (f"**Bold** <img src='http://{HOSTILE_HOST}:9/pixel.png'> "
                f"[site](http://{HOSTILE_HOST}:9/)")


@pytest.fixture(scope="module")
def hostile_integration(demo_site: DemoSite) -> Iterator[str]:
    """A Shop copy whose record for LINKED has a name that looks like Markdown and HTML,
    served for real and added as the integration "Hostile shop" to the demo database."""
    records = [replace(r, name=HOSTILE_NAME, custom_attributes={
        **r.custom_attributes, "note": f"<script>fetch('http://{HOSTILE_HOST}:9/x')</script>"})
        if LINKED.emails[0] in r.emails else r for r in SHOP.records]
    dataset = Dataset("shop", records, SHOP.population, SHOP.seed)
    server = BackgroundServer(create_app(dataset, signing_key="hostile-key"), "127.0.0.1", 0)
    server.start()
    ctx = open_demo_context(demo_settings(demo_site.log.parent))
    try:
        shop = next(i for i in DEMO_INTEGRATIONS if i.key == "shop")
        spec = replace(shop.spec(server.url), name="Hostile shop", signing_key="hostile-key",
                       autolink_enabled=False, autolink_fields=())
        service = IntegrationService(ctx)
        service.apply(SYSTEM, spec)
        yield "Hostile shop"
        # later flows search "All unlinked" systems: leave no integration at a stopped server
        for view in service.list(SYSTEM):
            if view.name == "Hostile shop":
                service.delete(SYSTEM, view.id)
    finally:
        ctx.db.dispose()
        server.stop()


def test_adaptor_text_that_looks_like_markup_shows_as_text(
        page: Page, demo_site: DemoSite, hostile_integration: str) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.route(f"http://{HOSTILE_HOST}*/**", lambda route: route.abort())
    sign_in_as(page, demo_site, DEVELOPER)
    page.get_by_test_id("stSidebarNav").get_by_role(
        "link", name=re.compile("Adaptor debugger")).click()
    wait_for_app(page)
    page.get_by_role("textbox", name="Email").first.fill(LINKED.emails[0])
    page.get_by_role("button", name=re.compile("Find the profile")).click()
    wait_for_app(page)
    page.locator(".st-key-dbg-integration").click()
    page.get_by_role("option", name=hostile_integration, exact=True).click()
    wait_for_app(page)
    page.get_by_role("button", name=re.compile("^.*Test$")).click()
    record = page.get_by_text(re.compile(r"^Record shop-\d+: \*\*Bold\*\* <img"))
    expect(record).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    # Shown as typed: no bold element, no image, no link made from the adaptor's text.
    main = page.get_by_test_id("stMain")
    expect(main.locator(f"img[src*='{HOSTILE_HOST}']")).to_have_count(0)
    expect(main.locator("strong", has_text="Bold")).to_have_count(0)
    expect(main.locator("script", has_text=HOSTILE_HOST)).to_have_count(0)
    assert not [url for url in requested if HOSTILE_HOST in url], requested
    # remark-gfm turns bare URLs in text nodes into links after escapes are resolved;
    # present.text's word joiner after "://" keeps them text.
    expect(main.locator(f"a[href*='{HOSTILE_HOST}']")).to_have_count(0)
    expect(record).to_contain_text(f"http://\u2060{HOSTILE_HOST}:9/pixel.png")
