"""The Adaptor debugger in a real browser, on the seeded demo: what a selection prefills
follows the selection (profile, adaptor, exchange), the exchange log's export downloads,
an opened exchange is in the address bar, and the viewer's long values stay readable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from linker.core.permissions import SYSTEM
from linker.demo import DEMO_ACCOUNTS, DEMO_INTEGRATIONS, demo_customers
from linker.services.exchanges import ExchangeService
from tests.e2e import test_flows_e2e
from tests.e2e.browser import demo_db, key_class
from tests.e2e.conftest import CHROMIUM, CHROMIUM_MISSING, DemoSite
from tests.e2e.test_flows_e2e import SKELETON, save_screenshot, sign_in_as
from tests.e2e.test_workbench_e2e import TIMEOUT_MS, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM.exists(),
                                                  reason=CHROMIUM_MISSING)]

DEVELOPER = next(a for a in DEMO_ACCOUNTS if a.username == "developer")
FIRST, SECOND = [c for c in demo_customers() if c.kind == "email_match" and c.phones][:2]
"""Two seeded profiles with an email and a mobile phone."""
ROW_PX, HEADER_PX = 35, 35
"""Height of a (canvas) dataframe row and of its header row."""


def open_debugger(page: Page, site: DemoSite) -> None:
    """Sign in as the developer and open the Adaptor debugger."""
    sign_in_as(page, site, DEVELOPER)
    page.get_by_test_id("stSidebarNav").get_by_role(
        "link", name=re.compile("Adaptor debugger")).click()
    expect(page.get_by_role("heading", name="Lookup Adaptor Debugger")).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)


def field(page: Page, key: str) -> Locator:
    """The text input with widget key ``key``."""
    return page.locator(f"{key_class(key)} input")


def find_profile(page: Page, email: str, name: str) -> None:
    """Find the profile by email on the Workflows tab and wait for its card."""
    field(page, "dbg.find.email").fill(email)
    page.get_by_role("button", name=re.compile("Find the profile")).click()
    expect(page.locator(key_class("dbg.card.card")).get_by_text(name)).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)


def choose(page: Page, key: str, option: str | re.Pattern[str]) -> None:
    """Pick ``option`` (the first matching) in the selectbox with widget key ``key``."""
    box = page.locator(key_class(key)).get_by_role("combobox")
    box.click()
    box.press("ArrowDown")  # opens the list when the click only focused the box
    page.get_by_role("option", name=option, exact=isinstance(option, str)).first.click()
    wait_for_app(page)


def choose_adaptor(page: Page, name: str) -> None:
    """Pick the adaptor of the Workflows tab."""
    choose(page, "dbg.integration", name)


def click_row(page: Page, table_key: str, index: int) -> None:
    """Select row ``index`` of a (canvas) dataframe by clicking its checkbox."""
    table = page.locator(f"{key_class(table_key)} [data-testid='stDataFrame'], "
                         f"[data-testid='stDataFrame']{key_class(table_key)}").first
    expect(table).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 15, box["y"] + HEADER_PX + ROW_PX * index + ROW_PX / 2)
    wait_for_app(page)


def open_log_row(page: Page, index: int, instead_of: int | None = None) -> int:
    """Open row ``index`` of the exchange log (in place of exchange ``instead_of``); the
    opened exchange's id."""
    click_row(page, "log.table", index)
    heading = page.get_by_role("heading", name=re.compile(r"^Exchange \d+$"))
    expect(heading).to_be_visible(timeout=TIMEOUT_MS)
    if instead_of is not None:
        expect(heading).not_to_have_text(f"Exchange {instead_of}", timeout=TIMEOUT_MS)
    return int(heading.inner_text().split()[-1])


def test_basic_fields_follow_the_profile(page: Page, demo_site: DemoSite) -> None:
    open_debugger(page, demo_site)
    find_profile(page, FIRST.emails[0], FIRST.name)
    choose_adaptor(page, "Shop")
    expect(field(page, "dbg.field.email")).to_have_value(FIRST.emails[0])
    expect(field(page, "dbg.field.phone")).to_have_value(FIRST.phones[0][0])

    find_profile(page, SECOND.emails[0], SECOND.name)
    expect(field(page, "dbg.field.email")).to_have_value(SECOND.emails[0])
    expect(field(page, "dbg.field.phone")).to_have_value(SECOND.phones[0][0])


def test_basic_fields_follow_the_adaptor(page: Page, demo_site: DemoSite) -> None:
    open_debugger(page, demo_site)
    find_profile(page, FIRST.emails[0], FIRST.name)
    choose_adaptor(page, "Shop")
    field(page, "dbg.field.email").fill("typed.for.shop@example.com")
    field(page, "dbg.field.email").press("Enter")
    wait_for_app(page)

    choose_adaptor(page, "Loyalty")
    expect(page.get_by_role("textbox", name="Order Number")).to_have_count(0)
    expect(field(page, "dbg.field.email")).to_have_value(FIRST.emails[0])


def test_replay_follows_the_opened_exchange(page: Page, demo_site: DemoSite) -> None:
    open_debugger(page, demo_site)
    page.get_by_role("tab", name="Exchange log").click()
    wait_for_app(page)
    opened = open_log_row(page, 1)
    page.get_by_role("button", name=re.compile("Replay now")).click()
    replay = page.get_by_role("heading", name=re.compile(r"^Replay: exchange \d+$"))
    expect(replay).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    expect(page.get_by_role("heading", name=f"Exchange {opened}")).to_be_visible()

    open_log_row(page, 3, instead_of=opened)
    expect(replay).to_have_count(0)


def test_opening_a_log_row_puts_it_in_the_address(page: Page, demo_site: DemoSite) -> None:
    open_debugger(page, demo_site)
    page.get_by_role("tab", name="Exchange log").click()
    wait_for_app(page)
    opened = open_log_row(page, 0)
    expect(page).to_have_url(re.compile(rf"/debugger\?exchange={opened}$"))
    other = open_log_row(page, 2, instead_of=opened)
    expect(page).to_have_url(re.compile(rf"/debugger\?exchange={other}$"))


SECRETS = [s for i in DEMO_INTEGRATIONS for s in (i.signing_key, i.password) if s]


def test_export_downloads_redacted_json_lines(page: Page, demo_site: DemoSite,
                                              tmp_path: Path) -> None:
    open_debugger(page, demo_site)
    page.get_by_role("tab", name="Exchange log").click()
    wait_for_app(page)
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.get_by_role("button", name=re.compile("Export JSONL")).click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == "linker-exchanges.jsonl"
    text = path.read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) > 10
    assert all({"id", "integration", "request", "response"} <= set(row) for row in lines)
    signed = [row["request"]["headers"]["Gladly-Authorization"] for row in lines
              if "Gladly-Authorization" in row["request"]["headers"]]
    assert signed and all("****" in value for value in signed), signed[:3]
    assert not [s for s in SECRETS if s in text]


def run_conformance(page: Page, adaptor: str, email: str) -> None:
    """Run the conformance checks against ``adaptor`` and wait for its report card."""
    choose(page, "conf.integration", adaptor)
    field(page, "conf.email").fill(email)
    page.get_by_role("button", name=re.compile("Run conformance checks")).click()
    expect(page.get_by_text(re.compile(rf"^{re.escape(adaptor)} (passes|fails) the required"))
           ).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)


def test_the_opened_check_exchange_follows_the_report_card(page: Page,
                                                            demo_site: DemoSite) -> None:
    open_debugger(page, demo_site)
    page.get_by_role("tab", name="Conformance").click()
    wait_for_app(page)
    run_conformance(page, "Shop", FIRST.emails[0])
    choose(page, "conf.exchange", re.compile(r"^Exchange \d+$"))
    viewer = page.locator(key_class("conf.viewer.exchange"))
    expect(viewer.get_by_text(re.compile(r"· Shop · "))).to_be_visible(timeout=TIMEOUT_MS)

    run_conformance(page, "Loyalty", FIRST.emails[0])
    expect(viewer.get_by_text(re.compile(r"· Shop · "))).to_have_count(0)


def unclipped(code: Locator) -> bool:
    """True when a code block shows its lines whole (wrapped: no horizontal overflow)."""
    return bool(code.locator("pre").evaluate("e => e.scrollWidth <= e.clientWidth"))


def section(page: Page, key: str) -> Locator:
    """The collapsible section with key ``key``."""
    return page.locator(f"{key_class(key)}[data-testid='stExpander'], "
                        f"{key_class(key)} [data-testid='stExpander']").first


def test_the_viewer_folds_bodies_and_shows_long_values_whole(page: Page,
                                                              demo_site: DemoSite) -> None:
    open_debugger(page, demo_site)
    page.get_by_role("tab", name="Exchange log").click()
    wait_for_app(page)
    opened = open_log_row(page, 0)
    with demo_db(demo_site) as ctx:
        signature = ExchangeService(ctx).get(SYSTEM, opened).request.headers[
            "Gladly-Authorization"]

    body = section(page, "log.viewer.response_body")
    expect(body).to_be_visible()
    expect(body.get_by_test_id("stCode")).to_be_hidden()  # folded until asked for
    body.get_by_text("Response body").click()
    expect(body.get_by_test_id("stCode")).to_be_visible()

    headers = section(page, "log.viewer.request_headers")
    headers.get_by_text(re.compile(r"^Request headers")).click()
    code = headers.get_by_test_id("stCode")
    expect(code).to_contain_text(f"Gladly-Authorization: {signature}")
    assert unclipped(code)

    curl = section(page, "log.curl")
    curl.get_by_text("Copy as cURL").click()
    command = curl.get_by_test_id("stCode").first
    expect(command).to_contain_text("--data-raw")
    assert unclipped(command)


def test_the_conformance_card_shows_every_check_whole(page: Page, demo_site: DemoSite) -> None:
    open_debugger(page, demo_site)
    page.get_by_role("tab", name="Conformance").click()
    wait_for_app(page)
    run_conformance(page, "Shop", FIRST.emails[0])
    card = page.get_by_test_id("stTable")
    rows = card.locator("tbody tr")
    expect(rows).to_have_count(11)
    assert card.evaluate("e => e.scrollHeight <= e.clientHeight + 1")  # no inner scroll
    cells = card.locator("td")
    assert all(cells.evaluate_all("cs => cs.map(c => c.scrollWidth <= c.clientWidth)"))
    skipped = rows.filter(has_text="no known phone given")
    expect(skipped.locator("td").last).to_have_text("")


def test_a_readme_screenshot_waits_for_the_code_blocks(page: Page, demo_site: DemoSite,
                                                       tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_flows_e2e, "SCREENSHOTS", tmp_path)
    open_debugger(page, demo_site)
    find_profile(page, FIRST.emails[0], FIRST.name)
    choose_adaptor(page, "Shop")
    page.get_by_role("button", name=re.compile("^.*Test$")).click()
    expect(page.get_by_role("heading", name="What the profile would get")).to_be_visible(
        timeout=TIMEOUT_MS)
    save_screenshot(page, "debugger.png")
    # what was captured: no grey placeholder where a code block belongs
    assert page.locator(SKELETON).count() == 0
    assert page.get_by_test_id("stCode").count() > 0
    assert (tmp_path / "debugger.png").stat().st_size > 0
