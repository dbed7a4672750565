"""A pager click is one script run, of the paged part only (issue 22, speed): the exchange
log's Older / Newer rerun the log tab's fragment once, the Coverage worklist's Next page /
First page rerun the worklist's fragment once, the Audit log's Older / Newest rerun the page
once. Runs are counted as the browser benchmark counts them: the ``newSession`` messages the
server sends on the websocket (a run stopped by ``st.rerun`` and its rerun are two), each with
the fragments it ran (none: the whole page)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from linker.demo import DEMO_ACCOUNTS
from tests.e2e.browser import key_class, open_page
from tests.e2e.conftest import CHROMIUM, CHROMIUM_MISSING, DemoSite
from tests.e2e.test_flows_e2e import sign_in_as
from tests.e2e.test_workbench_e2e import TIMEOUT_MS, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not CHROMIUM.exists(),
                                                  reason=CHROMIUM_MISSING)]

ADMIN = next(a for a in DEMO_ACCOUNTS if a.username == "admin")


class Runs:
    """The script runs the server started for ``page``: per run, the fragments it ran
    (an empty tuple: the whole script)."""

    def __init__(self, page: Page) -> None:
        self.started: list[tuple[str, ...]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            return
        msg = ForwardMsg.FromString(payload)
        if msg.WhichOneof("type") == "new_session":
            self.started.append(tuple(msg.metadata.run.fragment_ids))

    def after(self, mark: int) -> list[tuple[str, ...]]:
        """The runs started since ``mark`` (a length of ``started``)."""
        return self.started[mark:]


def page_turn(page: Page, runs: Runs, button: str, shows: str) -> list[tuple[str, ...]]:
    """Click the button with key ``button``, wait for the caption ``shows`` and for the app to
    be idle; the runs the click caused."""
    mark = len(runs.started)
    page.locator(key_class(button)).get_by_role("button").click()
    expect(page.get_by_text(re.compile(shows))).to_be_visible(timeout=TIMEOUT_MS)
    wait_for_app(page)
    return runs.after(mark)


def one_fragment_run(started: list[tuple[str, ...]]) -> bool:
    """Exactly one run, and it reran a fragment, not the whole page."""
    return len(started) == 1 and len(started[0]) == 1


def test_an_exchange_log_page_change_is_one_run_of_the_log(page: Page,
                                                            demo_site: DemoSite) -> None:
    runs = Runs(page)
    sign_in_as(page, demo_site, ADMIN)
    page.get_by_test_id("stSidebarNav").get_by_role(
        "link", name=re.compile("Adaptor debugger")).click()
    expect(page.get_by_role("heading", name="Lookup Adaptor Debugger")).to_be_visible(
        timeout=TIMEOUT_MS)
    wait_for_app(page)
    page.get_by_role("tab", name="Exchange log").click()

    older = page_turn(page, runs, "log.older", r"^Page 2 · ")
    assert one_fragment_run(older), older
    newer = page_turn(page, runs, "log.newer", r"^Page 1 · ")
    assert one_fragment_run(newer), newer


def test_a_worklist_page_change_is_one_run_of_the_worklist(page: Page,
                                                           demo_site: DemoSite) -> None:
    runs = Runs(page)
    sign_in_as(page, demo_site, ADMIN)
    open_page(page, "Coverage")

    following = page_turn(page, runs, "coverage.next", r"^Page 2 · ")
    assert one_fragment_run(following), following
    first = page_turn(page, runs, "coverage.first", r"^Page 1 · ")
    assert one_fragment_run(first), first


def test_an_audit_log_page_change_is_one_run(page: Page, demo_site: DemoSite) -> None:
    runs = Runs(page)
    sign_in_as(page, demo_site, ADMIN)
    open_page(page, "Audit log")

    older = page_turn(page, runs, "audit.older", r"^Page 2 · ")
    assert len(older) == 1, older
    newest = page_turn(page, runs, "audit.newest", r"^Page 1 · ")
    assert len(newest) == 1, newest
