"""The browser benchmark's core (``bench/browser.py``) on the e2e demo site, once, for a few
actions: each must come back with figures, so the benchmark cannot rot unnoticed. No timing
is asserted (the benchmark measures; the suite does not judge speed)."""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page

from tests.e2e.conftest import DemoSite

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import browser as bench  # bench/browser.py (the bench folder is not a package)
from demo_pages import ExchangeClock


def test_the_browser_bench_times_sign_in_a_page_and_a_workbench_action(
        page: Page, demo_site: DemoSite) -> None:
    site = bench.Site(demo_site.url, f"sqlite:///{demo_site.log.parent / 'linker.db'}",
                      demo_site.log.parent, 0)
    profile = bench.new_profile(site)
    wire = bench.watch(page)
    actions = {a.name: a for a in bench.all_actions(site.url, profile)}
    chosen = ["sign in (lands on Health)", "open Coverage (first)", "find + open a profile"]
    clock = ExchangeClock(site.database_url)
    try:
        timings = bench.run_actions(page, wire, clock, [actions[n] for n in chosen])
    finally:
        clock.engine.dispose()

    assert [t.action for t in timings] == chosen
    for timing in timings:
        assert not timing.error, timing
        assert timing.seconds is not None and timing.seconds > 0, timing
        assert timing.runs >= 1 and timing.messages >= 1 and timing.elements >= 1, timing
        assert timing.browser_s > 0, timing  # the renderer drew what the run sent
    # Opening the profile auto-links nothing new but refreshes Shop and Loyalty: their
    # exchanges are the adaptors' share.
    assert timings[2].exchanges >= 1 and timings[2].adaptor_s > 0, timings[2]
    rows = bench.summary([timings])
    assert [r["action"] for r in rows] == chosen and all(r["n"] == 1 for r in rows)
    assert "| find + open a profile |" in bench.table(rows)
