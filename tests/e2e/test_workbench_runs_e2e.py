"""A click in the Link workbench, and Sign in, is one script run (issue 22, speed): the write
happens in the button's callback and the run that follows shows the result, instead of a run
that writes and ends in ``st.rerun`` and a second one that shows it.

The runs are counted as the browser benchmark (``bench/browser.py``) counts them, with its
own actions and observer: the ``newSession`` messages the server sends on the websocket
between the click and the moment the page settled (a run stopped by ``st.rerun`` and its rerun
are two). No timing is asserted. Unlink and Unlink all are left out: their Yes sits in a
dialog, a fragment, whose click reruns the dialog before the page reruns.
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import DemoSite

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import browser as bench  # bench/browser.py (the bench folder is not a package)
from demo_pages import ExchangeClock

FROM_THE_BENCH = ["sign in (lands on Health)", "find + open a profile", "refresh Shop",
                  "unlink: open the dialog", "unlink Loyalty (Yes)", "allow auto-linking again",
                  "search one system (Loyalty)", "link (+ its detailed lookup)", "close",
                  "create a profile", "close the new profile", "open from the list"]
ONE_RUN = ["sign in (lands on Health)", "find + open a profile", "refresh Shop",
           "allow auto-linking again", "link (+ its detailed lookup)", "close",
           "create a profile", "close the new profile", "open from the list"]


def other_actions(profile: bench.Profile, new_name: str) -> dict[str, bench.Action]:
    """The workbench clicks the benchmark does not time: allow auto-linking again (after
    the unlink), Close, Create (a name only: nothing to auto-link, nobody alike) and Open
    from the list of newest customers."""
    def open_create_form(page: Page) -> None:
        page.get_by_text("New profile", exact=True).click()
        page.get_by_role("textbox", name="Name", exact=True).fill(new_name)

    def open_button(page: Page) -> None:
        page.locator("[class*='st-key-wb-row-']").filter(has_text=new_name).get_by_role(
            "button", name="Open").click()

    find_heading = bench.heading("Find a customer")
    return {
        "allow auto-linking again": bench.Action(
            "allow auto-linking again", bench.button(f"wb.card.allow.{profile.loyalty_id}"),
            bench.text(r"^Auto-linking to Loyalty is allowed again")),
        "close": bench.Action("close", bench.button("wb.close"), find_heading),
        "create a profile": bench.Action(
            "create a profile", bench.button("wb.create.submit"),
            bench.text(rf"^Created {re.escape(new_name)}\."), open_create_form),
        "close the new profile": bench.Action("close the new profile", bench.button("wb.close"),
                                              find_heading),
        "open from the list": bench.Action("open from the list", open_button,
                                           bench.heading(f"Customer: {new_name}")),
    }


def test_each_workbench_click_and_sign_in_is_one_script_run(page: Page,
                                                            demo_site: DemoSite) -> None:
    site = bench.Site(demo_site.url, f"sqlite:///{demo_site.log.parent / 'linker.db'}",
                      demo_site.log.parent, 0)
    profile = bench.new_profile(site)
    wire = bench.watch(page)
    actions = {a.name: a for a in bench.all_actions(site.url, profile)}
    actions.update(other_actions(profile, f"Runs {uuid.uuid4().hex[:8]}"))
    clock = ExchangeClock(site.database_url)
    try:
        timings = bench.run_actions(page, wire, clock, [actions[n] for n in FROM_THE_BENCH])
    finally:
        clock.engine.dispose()

    assert [t.action for t in timings] == FROM_THE_BENCH
    assert [t for t in timings if t.error] == []
    runs = {t.action: t.runs for t in timings if t.action in ONE_RUN}
    assert runs == dict.fromkeys(ONE_RUN, 1)
    expect(page.get_by_role("heading", name=re.compile("^Customer: Runs "))).to_be_visible()
