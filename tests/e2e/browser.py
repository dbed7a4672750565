"""Shared steps of the role flows: open a console page, read the demo database the dashboard
serves, pick dataset records nobody holds yet, and start an extra reference adaptor.

The flows (``test_*_flows_e2e.py``) sign in through the form (``sign_in_as``) and move between
pages through the sidebar; the database helpers let a flow set up or check what it needs
through the services, on the very database the dashboard process uses.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from linker.adaptor import BackgroundServer, Dataset, Record, create_app, parse_fault
from linker.core.permissions import SYSTEM
from linker.demo import demo_settings, open_demo_context
from linker.services.context import ServiceContext
from linker.services.integrations import IntegrationService, IntegrationView
from linker.store.models import CustomerEmail, Link
from tests.e2e.conftest import DemoSite
from tests.e2e.test_flows_e2e import save_screenshot, sign_in_as
from tests.e2e.test_workbench_e2e import TIMEOUT_MS, wait_for_app

__all__ = ["TIMEOUT_MS", "DemoSite", "adaptor_server", "demo_db", "flash", "free_records",
           "integration", "key_class", "open_page", "refresh_screenshot", "sign_in_as",
           "wait_for_app"]


def key_class(key: str) -> str:
    """The CSS class Streamlit gives an element with widget / container key ``key``
    (characters other than letters, digits, ``-`` and ``_`` become ``-``)."""
    return ".st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key)


def open_page(page: Page, title: str) -> None:
    """Open a console page from the sidebar and wait for its title."""
    page.get_by_test_id("stSidebarNav").get_by_role(
        "link", name=re.compile(rf"{re.escape(title)}$")).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)


def flash(page: Page, message: str) -> Locator:
    """The flash message (an alert) whose text starts with ``message``."""
    return page.get_by_test_id("stAlert").filter(has_text=message)


@contextmanager
def demo_db(site: DemoSite) -> Iterator[ServiceContext]:
    """Services on the database the running dashboard uses (closed on exit)."""
    ctx = open_demo_context(demo_settings(site.log.parent))
    try:
        yield ctx
    finally:
        ctx.db.dispose()


def integration(ctx: ServiceContext, name: str) -> IntegrationView:
    """The stored integration called ``name`` (AssertionError when there is none)."""
    found = [v for v in IntegrationService(ctx).list(SYSTEM) if v.name == name]
    assert found, f"no integration named {name!r}"
    return found[0]


def free_records(ctx: ServiceContext, dataset: Dataset, integration_name: str,
                 records: Iterable[Record] | None = None) -> Iterator[Record]:
    """Records of ``dataset`` that no profile holds: not linked to ``integration_name``, and
    no profile has any of their emails (so a new profile may take them). Duplicates
    (``duplicate_of`` or a shared email) are left out: an email search finds exactly one."""
    target = integration(ctx, integration_name)
    with ctx.db.session(readonly=True) as session:
        linked = set(session.scalars(select(Link.external_customer_id)
                                     .where(Link.integration_id == target.id)))
        taken = set(session.scalars(select(CustomerEmail.normalized)))
    shared = {e.lower() for e in dataset.duplicate_emails()}
    for record in dataset.records if records is None else records:
        emails = {e.lower() for e in record.emails}
        if (record.duplicate_of or record.external_customer_id in linked
                or emails & (taken | shared)):
            continue
        if all(len(dataset.search(emails=[e])) == 1 for e in record.emails):
            yield record


@contextmanager
def adaptor_server(dataset: Dataset, signing_key: str | None = None,
                   faults: Iterable[str] = ()) -> Iterator[BackgroundServer]:
    """A reference adaptor for ``dataset`` served for real on a free loopback port."""
    server = BackgroundServer(create_app(dataset, signing_key=signing_key,
                                         faults=[parse_fault(f) for f in faults]),
                              "127.0.0.1", 0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def refresh_screenshot(page: Page, name: str) -> None:
    """Save ``docs/screenshots/<name>`` for the README when ``LINKER_SCREENSHOTS=1``."""
    if os.environ.get("LINKER_SCREENSHOTS") == "1":
        save_screenshot(page, name)
