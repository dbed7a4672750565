"""The console asks nothing of any other host: every request a page load makes (the favicon
included, which Streamlit fetched from fonts.gstatic.com for a ``:material/...`` page icon)
goes to the console's own origin, in a real browser on the seeded demo, for every page each
role sees."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, expect

from dashboard.auth import pages_for
from linker.demo import DEMO_ACCOUNTS, DemoAccount
from tests.e2e import browser as e2e

LOCAL_SCHEMES = {"data", "blob", "about"}
"""Addresses that are no request to any host (inline images, object URLs)."""


def foreign(urls: list[str], origin: str) -> list[str]:
    """The requested URLs that leave ``origin`` (scheme, host and port)."""
    own = urlsplit(origin)
    return [url for url in urls if urlsplit(url).scheme not in LOCAL_SCHEMES
            and (urlsplit(url).scheme, urlsplit(url).netloc) != (own.scheme, own.netloc)]


@pytest.mark.parametrize("account", DEMO_ACCOUNTS, ids=lambda a: a.username)
def test_every_page_requests_only_the_console_s_own_origin(
        page: Page, demo_site: e2e.DemoSite, account: DemoAccount) -> None:
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.context.on("request", record)
    page.context.clear_cookies()
    e2e.sign_in_as(page, demo_site, account)
    specs = pages_for(account.role)
    expect(page.get_by_role("heading", name=specs[0].title, exact=True)).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    for spec in specs[1:]:
        page.get_by_test_id("stSidebarNav").get_by_role(
            "link", name=re.compile(rf"{re.escape(spec.title)}$")).click()
        expect(page).to_have_url(re.compile(rf"/{spec.key}$"), timeout=e2e.TIMEOUT_MS)
        expect(page.get_by_test_id("stMain").get_by_role("heading").first).to_be_visible(
            timeout=e2e.TIMEOUT_MS)
        e2e.wait_for_app(page)
    page.reload()  # a fresh load of the last page: the favicon is asked for again
    e2e.wait_for_app(page)
    expect(page.get_by_test_id("stMain").get_by_role("heading").first).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    assert any(urlsplit(u).path.endswith("/_stcore/health") or "/static/" in u
               for u in requested), requested  # the recorder saw the page's own requests
    assert sorted(set(foreign(requested, demo_site.url))) == []
