"""A pager click is one script run, of the paged part only (issue 22, speed): the exchange
log's Older / Newer rerun the log tab's fragment once, the Coverage worklist's Next page /
First page rerun the worklist's fragment once, the Audit log's Older / Newest rerun the page
once; on Health, the tiles' 5-second tick re-sends the tiles, not the two charts. Runs are
counted as the browser benchmark counts them: the ``newSession`` messages the
server sends on the websocket (a run stopped by ``st.rerun`` and its rerun are two), each with
the fragments it ran (none: the whole page)."""

from __future__ import annotations

import re
import time

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
    (an empty tuple: the whole script), the element types it sent and whether it finished."""

    def __init__(self, page: Page) -> None:
        self.started: list[tuple[str, ...]] = []
        self.sent: list[list[str]] = []
        self.finished = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, payload: str | bytes) -> None:
        if isinstance(payload, str):
            return
        msg = ForwardMsg.FromString(payload)
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.started.append(tuple(msg.metadata.run.fragment_ids))
            self.sent.append([])
        elif kind == "delta" and self.sent and msg.delta.WhichOneof("type") == "new_element":
            self.sent[-1].append(str(msg.delta.new_element.WhichOneof("type")))
        elif kind == "script_finished":
            self.finished = len(self.started)

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


def test_a_health_tick_resends_the_tiles_not_the_charts(page: Page, demo_site: DemoSite) -> None:
    runs = Runs(page)
    sign_in_as(page, demo_site, ADMIN)  # lands on Health
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(2, timeout=TIMEOUT_MS)
    wait_for_app(page)
    mark = len(runs.started)
    deadline = time.monotonic() + 30
    while not any(runs.started[i] for i in range(mark, runs.finished)):
        assert time.monotonic() < deadline, "no fragment tick within 30 s"
        page.wait_for_timeout(100)  # the next poll; frames are delivered meanwhile
    tick = next(i for i in range(mark, runs.finished) if runs.started[i])
    assert len(runs.started[tick]) == 1, runs.started[tick]
    assert "metric" in runs.sent[tick], runs.sent[tick]  # the tiles came again
    assert "plotly_chart" not in runs.sent[tick], runs.sent[tick]
