"""The dashboard process SIGKILLed during a link, in a real browser (issue 10, crash).

An agent signs in to a real ``streamlit run`` on its own database, finds a profile, searches
Shop and clicks Link; the Shop adaptor (over loopback) is switched to never answer just
before, so the console commits the link and then waits on the DETAILED lookup. The test polls
the database until the link is there and SIGKILLs the Streamlit process. After a restart the
database is consistent (one link, one ``link.created`` event, no data yet) and opening the
profile again pulls the data, with no second link or audit event.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import Select, func, select

from linker.adaptor import BackgroundServer, create_app, load_dataset
from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.demo import (
    dashboard_url,
    demo_settings,
    open_demo_context,
    start_dashboard,
    stop_process,
    wait_for_dashboard,
)
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService
from linker.services.integrations import AttributeSpec, IntegrationService, IntegrationSpec
from linker.services.users import UserService
from linker.store.models import AuditEvent, Link, PulledData
from tests.e2e.conftest import CHROMIUM, CHROMIUM_MISSING, STARTUP_TIMEOUT_S, free_port
from tests.e2e.test_workbench_e2e import TIMEOUT_MS, find_customer, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM.exists(),
                                                  reason=CHROMIUM_MISSING)]

SHOP = load_dataset("shop")
PERSON = next(r for r in SHOP.records
              if r.emails and len(SHOP.search(emails=[r.emails[0]])) == 1)
DEADLINE_S = 120.0


class Switchable:
    """An ASGI app that passes requests to ``app`` until ``hang`` is set, then holds every
    request without answering until the client goes away."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hang = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.hang.is_set():
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await self.app(scope, receive, send)


@dataclass
class Site:
    settings: Settings
    ctx: ServiceContext
    adaptor: Switchable
    customer: str
    password: str
    home: Path


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = demo_settings(tmp_path / "home")
    ctx = open_demo_context(settings)
    adaptor = Switchable(create_app("shop"))
    with BackgroundServer(adaptor) as server:
        IntegrationService(ctx).create(SYSTEM, IntegrationSpec(
            name="Shop", url=server.url + "lookup", timeout_s=15.0,
            search_query_attributes=(AttributeSpec("email", "Email"),),
            search_results_attributes=(AttributeSpec("name", "Name"),
                                       AttributeSpec("email", "Email"))))
        _, password = UserService(ctx).create(SYSTEM, "crash-agent", "agent")
        assert password is not None
        customer = CustomerService(ctx).import_csv(  # imported: not auto-linked
            SYSTEM, f"name,email,phone\n{PERSON.name},{PERSON.emails[0]},\n").created[0]
        try:
            yield Site(settings, ctx, adaptor, customer, password, tmp_path)
        finally:
            adaptor.hang.clear()
            ctx.db.dispose()


def _count(site: Site, query: Select[tuple[int]]) -> int:
    with site.ctx.db.session(readonly=True) as s:
        return int(s.scalar(query) or 0)


def _fetched(site: Site) -> bool:
    with site.ctx.db.session(readonly=True) as s:
        pulled = s.scalars(select(PulledData).where(PulledData.customer_id == site.customer)
                           ).first()
        return pulled is not None and pulled.fetched_at is not None


def _open_profile(page: Page, url: str, site: Site) -> None:
    """Sign in (unless the session cookie still signs the browser in after a restart) and
    open the profile in the workbench."""
    page.goto(url)
    wait_for_app(page)
    signed_in = page.get_by_text("Signed in as crash-agent")
    sign_in = page.get_by_role("button", name="Sign in")
    expect(signed_in.or_(sign_in).first).to_be_visible(timeout=TIMEOUT_MS)
    if sign_in.count():
        page.get_by_role("textbox", name="Username").fill("crash-agent")
        page.get_by_role("textbox", name="Password").fill(site.password)
        sign_in.click()
        wait_for_app(page)
    page.get_by_role("link", name="Link workbench").click()
    expect(page.get_by_role("heading", name="Link workbench")).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    find_customer(page, PERSON.emails[0], PERSON.name)


def test_the_dashboard_killed_during_a_link_leaves_a_consistent_database(
        page: Page, site: Site) -> None:
    port = free_port()
    process = start_dashboard(site.settings, port, env={"LINKER_DEV_ROLE": None},
                              log=site.home / "dashboard.log")
    try:
        wait_for_dashboard(dashboard_url(port), process, timeout_s=STARTUP_TIMEOUT_S)
        _open_profile(page, dashboard_url(port), site)
        linking = page.locator(".st-key-wb-link_section")
        linking.locator(".st-key-wb-search-submit button").click()
        results = linking.locator(".st-key-wb-results [data-testid='stDataFrame']")
        expect(results).to_be_visible(timeout=TIMEOUT_MS)
        wait_for_app(page)
        box = results.bounding_box()  # the table is a canvas: row 0's selection checkbox
        assert box is not None
        page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)
        expect(page.get_by_label("System to link")).to_be_visible(timeout=TIMEOUT_MS)
        wait_for_app(page)
        site.adaptor.hang.set()  # the DETAILED lookup after the link never comes back
        page.get_by_role("button", name="Link", exact=True).click()
        links = select(func.count()).select_from(Link).where(Link.customer_id == site.customer)
        deadline = time.monotonic() + DEADLINE_S
        while _count(site, links) == 0:
            assert process.poll() is None, "the dashboard exited by itself"
            assert time.monotonic() < deadline, "the click never linked"
            time.sleep(0.05)  # polling the database with a deadline
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        stop_process(process)

    created = (select(func.count()).select_from(AuditEvent)
               .where(AuditEvent.action == "link.created", AuditEvent.entity_id == site.customer))
    assert (_count(site, links), _count(site, created)) == (1, 1)
    assert not _fetched(site)  # killed before the data came

    site.adaptor.hang.clear()
    port = free_port()
    process = start_dashboard(site.settings, port, env={"LINKER_DEV_ROLE": None},
                              log=site.home / "dashboard-restarted.log")
    try:
        wait_for_dashboard(dashboard_url(port), process, timeout_s=STARTUP_TIMEOUT_S)
        _open_profile(page, dashboard_url(port), site)  # opening refreshes the link
        deadline = time.monotonic() + DEADLINE_S
        while not _fetched(site):
            assert time.monotonic() < deadline, "opening the profile did not pull the data"
            time.sleep(0.05)
    finally:
        stop_process(process)
    assert (_count(site, links), _count(site, created)) == (1, 1)
    assert _count(site, select(func.count()).select_from(Link)) == 1
