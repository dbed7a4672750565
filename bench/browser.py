"""Click to settled in a real browser: the console on the demo (or a big database), driven by
Debian's chromium through Playwright, every action timed as a person waits for it.

Run: ``.venv/bin/python bench/browser.py [--repeat 3] [--latency-ms 30] [--json out.json]
[--big | --database-url URL] [--only TEXT]``

The demo is started as the e2e fixture starts it (``tests/e2e/conftest.py``): the reference
adaptors on free loopback ports (each answering in about ``--latency-ms``, as
``bench/demo_pages.py``), a seeded demo database (``seed_demo`` + ``seed_history``) in a
temporary LINKER_HOME, and Streamlit on a free port. With ``--big`` (the SQLite file
``bench/gen_big_db.py`` makes, 100,000 profiles and 1,000,000 exchanges) or ``--database-url``
an existing database is used: the demo's integrations are pointed at the adaptors and its
accounts added (``seed_demo`` without customers), other integrations are deactivated.

Every repetition is a new browser context (a new Streamlit session) signed in as the demo's
admin (every page), with a profile made for it through the services (a person Shop and
Loyalty both know by the same email, so auto-linking links both). The actions, in order: sign
in, the first then the repeat open of every page, find + open the profile, refresh Shop,
unlink Loyalty (dialog, then Yes), search Loyalty, link the row found, search every unlinked
system, unlink all (dialog, then Yes), the debugger's workflows (find, Basic + Detailed,
Autolinking + Detailed), the exchange log (older page, a filter, open an exchange),
conformance, the Coverage worklist's next page.

Settled is Streamlit's own rule (the app connected, no script running) made safe against the
moment between the click and the start of its run: an observer injected into the page
(``OBSERVER``) counts the script runs the front end sees start and time-stamps each change of
``data-test-script-state``; an action is settled when at least one run started after the click,
the state is ``notRunning`` and nothing changed for ``--quiet-ms``, and the element the action
should show is visible. The figure is, in the page's clock, from the first pointer or key event
of the click to the last change to ``notRunning`` (or to the moment the element became visible,
when later). The websocket's frames give the server's script runs (``newSession`` messages: a
rerun after ``st.rerun`` is one, even when the front end never shows ``notRunning`` between
them), the bytes and the element deltas sent. The adaptors' share is the union of the intervals
of the exchanges stored during the action (``demo_pages.ExchangeClock``); "added" is the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # imported from a test: the bench's sibling modules
    sys.path.insert(0, str(BENCH))

from demo_pages import ExchangeClock  # noqa: E402
from machine import ROOT, describe_machine  # noqa: E402
from playwright.sync_api import Locator, Page, expect, sync_playwright  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from linker.adaptor import load_dataset  # noqa: E402
from linker.config import Settings  # noqa: E402
from linker.core.permissions import SYSTEM  # noqa: E402
from linker.demo import (  # noqa: E402
    DEMO_ACCOUNTS,
    DEMO_DATASET_SIZE,
    DEMO_INTEGRATIONS,
    DemoAdaptors,
    DemoIntegration,
    dashboard_url,
    demo_settings,
    open_demo_context,
    seed_demo,
    start_dashboard,
    stop_process,
    wait_for_dashboard,
)
from linker.demo_history import seed_history  # noqa: E402
from linker.services.context import ServiceContext  # noqa: E402
from linker.services.customers import CustomerService  # noqa: E402
from linker.services.integrations import IntegrationChanges, IntegrationService  # noqa: E402
from linker.store.database import display_url  # noqa: E402
from tests.e2e.browser import free_records, key_class  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

ADMIN = next(a for a in DEMO_ACCOUNTS if a.username == "admin")
BIG_DB = ROOT / ".linker" / "big.db"
EXISTING_HOME = ROOT / ".linker" / "browser-bench-home"
"""LINKER_HOME of runs on an existing database: its secret key decrypts what the first run
stored (a new database from bench/gen_big_db.py holds no secret yet)."""
TIMEOUT_MS = 60_000
QUIET_MS = 300
PAGES = {"Health": "Health", "Link workbench": "Link workbench", "Integrations": "Integrations",
         "Auto-linking": "Auto-linking", "Adaptor debugger": "Lookup Adaptor Debugger",
         "Coverage": "Coverage", "Audit log": "Audit log"}
"""Sidebar title → the page's heading."""

OBSERVER = """
(() => {
  const b = window.__bench = {runs: 0, events: [], lastChange: performance.now(), input: null,
                              mark: 0};
  const seen = (e) => { if (b.input === null) b.input = performance.now(); };
  for (const type of ['pointerdown', 'keydown']) window.addEventListener(type, seen, true);
  let state = null;
  const change = (now, t) => {
    if (now === null || now === state) return;
    if (now === 'running') b.runs += 1;
    b.events.push([t, now]);
    b.lastChange = t;
    state = now;
  };
  // Records keep the value before each change: a run that starts and ends within one task
  // (both changes in one callback) is still seen.
  new MutationObserver((records) => {
    const t = performance.now(), app = document.querySelector("[data-testid='stApp']");
    const mine = records.filter((r) => r.type === 'attributes' && r.target === app);
    for (const r of mine.slice(1)) change(r.oldValue, t);
    if (app) change(app.getAttribute('data-test-script-state'), t);
  }).observe(document, {subtree: true, childList: true, attributes: true,
    attributeOldValue: true, attributeFilter: ['data-test-script-state']});
  b.begin = () => { b.input = null; b.mark = b.events.length; return b.runs; };
  b.result = (visible) => {
    const events = b.events.slice(b.mark);
    let idle = null, running = 0, since = null;
    for (const [t, s] of events) {
      if (s === 'running' && since === null) since = t;
      if (s !== 'running' && since !== null) { running += t - since; since = null; }
      if (s === 'notRunning') idle = t;
    }
    const end = visible && idle !== null ? idle : performance.now();
    const nodes = document.getElementsByTagName('*').length;
    const elements = document.querySelectorAll("[data-testid='stElementContainer']").length;
    return {start: b.input, end: end, running: running, nodes: nodes, elements: elements};
  };
})();
"""
SETTLED = """([before, quiet, started]) => {
  const b = window.__bench, app = document.querySelector("[data-testid='stApp']");
  return !!(b && app && (started || b.runs > before)
    && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && performance.now() - b.lastChange >= quiet);
}"""
QUIET = """([quiet]) => {
  const b = window.__bench, app = document.querySelector("[data-testid='stApp']");
  return !!(b && app && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && performance.now() - b.lastChange >= quiet);
}"""


# -- what one action measured -------------------------------------------------------------------


@dataclass
class Timing:
    """One action of one repetition; ``error`` is set (and the figures empty) when it failed."""

    action: str
    seconds: float | None = None
    runs: int = 0
    """Script runs the server started (``newSession`` messages)."""
    seen_runs: int = 0
    """Script runs the front end showed starting (the observer)."""
    running_s: float = 0.0
    exchanges: int = 0
    adaptor_s: float = 0.0
    messages: int = 0
    kbytes: float = 0.0
    deltas: int = 0
    elements: int = 0
    nodes: int = 0
    finished: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    error: str = ""
    browser_s: float = 0.0
    """The renderer's main thread busy meanwhile (chromium's TaskDuration: script, style,
    layout, paint), from the DevTools protocol's Performance domain."""


class Wire:
    """The websocket frames the page received since ``reset``: messages, bytes, deltas, script
    runs started and how they finished."""

    def __init__(self) -> None:
        self.messages = self.size = self.deltas = self.sessions = 0
        self.finished: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        """Deltas by element type (``html``, ``arrow_data_frame``, ``plotly_chart``, …)."""

    def reset(self) -> None:
        """Start counting again."""
        self.__init__()  # type: ignore[misc]

    def received(self, payload: str | bytes) -> None:
        """One frame from the server (a ForwardMsg)."""
        self.messages += 1
        self.size += len(payload)
        if isinstance(payload, str):
            return
        msg = ForwardMsg.FromString(payload)
        kind = msg.WhichOneof("type")
        if kind == "delta":
            self.deltas += 1
            part = msg.delta.WhichOneof("type")
            self.kinds[str(msg.delta.new_element.WhichOneof("type")) if part == "new_element"
                       else str(part)] += 1
        elif kind == "new_session":
            self.sessions += 1
        elif kind == "script_finished":
            self.finished[ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)] += 1


def watch(page: Page) -> Wire:
    """Inject the observer and count the websocket traffic of ``page``."""
    wire = Wire()
    page.add_init_script(OBSERVER)
    page.on("websocket", lambda ws: ws.on("framereceived", wire.received))
    return wire


class RendererClock:
    """How long the page's renderer main thread has been busy (seconds), read through the
    DevTools protocol (``Performance.getMetrics``: ``TaskDuration``), so an action's front-end
    share is the difference of two readings."""

    def __init__(self, page: Page) -> None:
        self.session = page.context.new_cdp_session(page)
        self.session.send("Performance.enable")

    def busy_s(self) -> float:
        """Seconds of main-thread tasks so far."""
        metrics = self.session.send("Performance.getMetrics")["metrics"]
        return float(next((m["value"] for m in metrics if m["name"] == "TaskDuration"), 0.0))


def quiet(page: Page) -> None:
    """Wait until no script runs and nothing changed for ``QUIET_MS``."""
    page.wait_for_function(QUIET, arg=[QUIET_MS], timeout=TIMEOUT_MS, polling=25)


def settle(page: Page, wire: Wire, before: int) -> None:
    """Wait until a script run started after the click (seen by the observer, or a
    ``newSession`` on the wire) and the app has been quiet since for ``QUIET_MS``."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not page.evaluate(SETTLED, [before, QUIET_MS, wire.sessions > 0]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no script run settled within {TIMEOUT_MS / 1000:g} s "
                               f"({wire.sessions} started on the wire)")
        page.wait_for_timeout(25)  # the next poll (events are delivered meanwhile)


# -- the actions --------------------------------------------------------------------------------


def nothing(page: Page) -> None:
    """No preparation."""


@dataclass(frozen=True)
class Action:
    """A click a person makes (``click``), after untimed steps (``prepare``), and what the page
    shows once it is done (``shows``)."""

    name: str
    click: Callable[[Page], None]
    shows: Callable[[Page], Locator]
    prepare: Callable[[Page], None] = nothing


@dataclass(frozen=True)
class Profile:
    """The profile a repetition works on: auto-linked to Shop and Loyalty."""

    name: str
    email: str
    shop_id: int
    loyalty_id: int


def heading(title: str) -> Callable[[Page], Locator]:
    """The page heading ``title``."""
    return lambda page: page.get_by_role("heading", name=title, exact=True)


def text(pattern: str) -> Callable[[Page], Locator]:
    """Text matching the regular expression ``pattern``."""
    return lambda page: page.get_by_text(re.compile(pattern)).first


def nav_click(title: str) -> Callable[[Page], None]:
    """Click ``title`` in the sidebar."""
    return lambda page: page.get_by_test_id("stSidebarNav").get_by_role(
        "link", name=re.compile(rf"{re.escape(title)}$")).click()


def on_page(title: str) -> Callable[[Page], None]:
    """Open ``title`` from the sidebar unless its heading shows (untimed)."""
    def go(page: Page) -> None:
        if not heading(PAGES[title])(page).is_visible():
            nav_click(title)(page)
            expect(heading(PAGES[title])(page)).to_be_visible(timeout=TIMEOUT_MS)
        quiet(page)
    return go


def keyed(key: str) -> Callable[[Page], Locator]:
    """The element with widget / container key ``key``."""
    return lambda page: page.locator(key_class(key))


def button(key: str) -> Callable[[Page], None]:
    """Click the button of widget key ``key``."""
    return lambda page: keyed(key)(page).get_by_role("button").first.click()


def choose(key: str, option: str) -> Callable[[Page], None]:
    """Pick ``option`` in the selectbox of key ``key``."""
    def pick(page: Page) -> None:
        box = keyed(key)(page).get_by_role("combobox")
        if box.input_value() == option:
            return
        wanted = page.get_by_role("option", name=option, exact=True)
        box.click()
        if not wanted.is_visible():  # focused already (e.g. after a dialog): a click closes it
            box.press_sequentially(option)
        wanted.click()
        expect(box).to_have_value(option, timeout=TIMEOUT_MS)
    return pick


def then(*steps: Callable[[Page], None]) -> Callable[[Page], None]:
    """The steps one after the other, each waiting for quiet after it."""
    def run(page: Page) -> None:
        for step in steps:
            step(page)
            quiet(page)
    return run


def sign_in_actions(url: str) -> list[Action]:
    """Sign in through the form; the admin lands on Health."""
    def prepare(page: Page) -> None:
        page.goto(url)
        expect(page.get_by_role("textbox", name="Username")).to_be_visible(timeout=TIMEOUT_MS)
        quiet(page)
        page.get_by_role("textbox", name="Username").fill(ADMIN.username)
        page.get_by_role("textbox", name="Password").fill(ADMIN.password)

    return [Action("sign in (lands on Health)",
                   lambda page: page.get_by_role("button", name="Sign in").click(),
                   heading("Health"), prepare)]


def page_actions() -> list[Action]:
    """Every page opened from the sidebar, first once each, then again."""
    order = [*list(PAGES)[1:], "Health"]
    first = [Action(f"open {t} (first)", nav_click(t), heading(PAGES[t])) for t in order[:-1]]
    again = [Action(f"open {t} (again)", nav_click(t), heading(PAGES[t])) for t in order]
    return first + again


def workbench_actions(profile: Profile) -> list[Action]:
    """Find + open, refresh, unlink one, search one, link, search all, unlink all."""
    def find(page: Page) -> None:
        on_page("Link workbench")(page)
        page.get_by_role("textbox", name="Email, phone or name").fill(profile.email)

    def pick_row(page: Page) -> None:
        table = keyed("wb.results")(page).locator("[data-testid='stDataFrame']").first
        expect(table).to_be_visible(timeout=TIMEOUT_MS)
        box = table.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)
        expect(page.get_by_role("combobox", name="System to link")).to_be_visible(
            timeout=TIMEOUT_MS)

    def dialog_yes(label: str) -> Callable[[Page], None]:
        return lambda page: page.get_by_role("dialog").get_by_role(
            "button", name=label).click()

    def open_dialog(key: str, title: str) -> Callable[[Page], None]:
        def run(page: Page) -> None:
            button(key)(page)
            expect(page.get_by_role("dialog").get_by_text(title)).to_be_visible(
                timeout=TIMEOUT_MS)
        return run

    search = button("wb.search.submit")
    results = text(r"result\(s\) from |^No match in |could not be searched|failed \(")
    loyalty, shop = profile.loyalty_id, profile.shop_id
    return [
        Action("find + open a profile", lambda page: page.get_by_role(
            "button", name="Find", exact=True).click(),
            heading(f"Customer: {profile.name}"), find),
        Action("refresh Shop", button(f"wb.refresh.{shop}"), text(r"^Refresh(ed)? .*Shop")),
        Action("unlink: open the dialog", button(f"wb.unlink.{loyalty}"),
               lambda page: page.get_by_role("dialog").get_by_text("Unlink from Loyalty")),
        Action("unlink Loyalty (Yes)", dialog_yes("Yes, unlink"), text(r"^Unlinked from Loyalty")),
        Action("search one system (Loyalty)", search, results,
               choose("wb.search.in", "Loyalty")),
        Action("link (+ its detailed lookup)", button("wb.link.submit"),
               text(r"^Linked to Loyalty"), pick_row),
        Action("search all unlinked systems", search, results,
               choose("wb.search.in", "All unlinked external systems")),
        Action("unlink all (Yes)", dialog_yes("Yes, unlink from all"),
               text(r"^Unlinked from \d+ system"),
               open_dialog("wb.unlink_all", "Unlink from all systems")),
    ]


def debugger_actions(profile: Profile) -> list[Action]:
    """The workflows (find, Basic + Detailed, Autolinking + Detailed), the exchange log (older
    page, a filter, open a row) and conformance."""
    def find(page: Page) -> None:
        on_page("Adaptor debugger")(page)
        page.get_by_role("tab", name="Workflows").click()
        keyed("dbg.find.email")(page).get_by_role("textbox").fill(profile.email)

    def tab(name: str) -> Callable[[Page], None]:
        def run(page: Page) -> None:
            on_page("Adaptor debugger")(page)
            page.get_by_role("tab", name=name).click()
        return run

    def conformance(page: Page) -> None:
        tab("Conformance")(page)
        quiet(page)
        choose("conf.integration", "Shop")(page)
        quiet(page)
        keyed("conf.email")(page).get_by_role("textbox").fill(profile.email)

    def autolink(page: Page) -> None:
        page.get_by_text("Autolinking + Detailed").click()
        expect(page.get_by_role("heading", name=re.compile("^Step 1"))).to_have_count(
            0, timeout=TIMEOUT_MS)

    def first_row(page: Page) -> None:
        table = keyed("log.table")(page).locator("[data-testid='stDataFrame']").first
        table = table if table.count() else page.locator(
            "[data-testid='stDataFrame'].st-key-log-table")
        box = table.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + 15, box["y"] + 35 + 17)

    return [
        Action("debugger: find the profile", button("dbg.find.submit"),
               text("^Basic \\+ Detailed$"), find),
        Action("debugger: Basic + Detailed (Shop)", button("dbg.test"),
               heading("What the profile would get"), choose("dbg.integration", "Shop")),
        Action("debugger: Autolinking + Detailed", button("dbg.test"),
               lambda page: page.get_by_role("heading", name=re.compile("^Step 1")).first,
               autolink),
        Action("exchange log: older page", button("log.older"), text(r"^Page 2 · "),
               tab("Exchange log")),
        Action("exchange log: newer page", button("log.newer"), text(r"^Page 1 · ")),
        Action("exchange log: filter failed", lambda page: page.get_by_role(
            "option", name="failed", exact=True).click(), text(r"^Page 1 · "),
            lambda page: keyed("log.error_kind")(page).get_by_role("combobox").click()),
        Action("exchange log: open an exchange", first_row,
               lambda page: page.get_by_role("heading", name=re.compile(r"^Exchange \d+$"))),
        Action("conformance (Shop)", button("conf.run"),
               text(r"(passes|fails) the required checks"), conformance),
    ]


def coverage_actions() -> list[Action]:
    """The worklist's next page."""
    return [Action("coverage worklist: next page", button("coverage.next"),
                   text(r"^Page 2 · "), on_page("Coverage"))]


def all_actions(url: str, profile: Profile) -> list[Action]:
    """Every action of one repetition, in order."""
    return [*sign_in_actions(url), *page_actions(), *workbench_actions(profile),
            *debugger_actions(profile), *coverage_actions()]


# -- timing -------------------------------------------------------------------------------------


def measure(page: Page, wire: Wire, clock: ExchangeClock, action: Action,
            renderer: RendererClock | None = None) -> Timing:
    """Prepare (untimed), click, wait until settled, and read the figures."""
    action.prepare(page)
    quiet(page)
    clock.since_mark()
    renderer_before = renderer.busy_s() if renderer else 0.0
    before = page.evaluate("window.__bench.begin()")
    wire.reset()
    action.click(page)
    settle(page, wire, before)
    shown = action.shows(page)
    visible = shown.first.is_visible()
    if not visible:
        expect(shown.first).to_be_visible(timeout=TIMEOUT_MS)
    seen = page.evaluate("(visible) => window.__bench.result(visible)", visible)
    runs = page.evaluate("window.__bench.runs") - before
    exchanges, busy = clock.since_mark()
    if seen["start"] is None:
        raise RuntimeError("the click reached the page as no pointer or key event")
    return Timing(action.name, (seen["end"] - seen["start"]) / 1000, wire.sessions, runs,
                  seen["running"] / 1000, exchanges, busy, wire.messages, wire.size / 1024,
                  wire.deltas, seen["elements"], seen["nodes"], dict(wire.finished),
                  dict(wire.kinds),
                  browser_s=(renderer.busy_s() - renderer_before) if renderer else 0.0)


def run_actions(page: Page, wire: Wire, clock: ExchangeClock, actions: Sequence[Action],
                only: str = "", log: Callable[[str], None] = print) -> list[Timing]:
    """Measure each action; a failure is recorded and printed, and the run goes on."""
    timings: list[Timing] = []
    renderer = RendererClock(page)
    for action in actions:
        if only and only not in action.name and not action.name.startswith("sign in"):
            continue
        try:
            timing = measure(page, wire, clock, action, renderer)
            log(f"  {action.name:<40} {timing.seconds * 1000:>6.0f} ms"  # type: ignore[operator]
                f"  runs {timing.runs}")
        except Exception as exc:  # the bench goes on; the table shows the failure
            timing = Timing(action.name, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
            log(f"  {action.name:<40} FAILED {timing.error}")
            if os.environ.get("BENCH_TRACEBACK"):
                traceback.print_exc()
                page.screenshot(path=f"/tmp/bench-{len(timings)}.png", full_page=True)
        timings.append(timing)
    return timings


# -- the site -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """The running console and the database it serves."""

    url: str
    database_url: str
    home: Path
    pid: int


def bench_integrations(latency_ms: int) -> list[DemoIntegration]:
    """The demo's integrations, each adaptor answering in about ``latency_ms``."""
    return [replace(i, faults=(*i.faults, f"latency:{latency_ms}")) for i in DEMO_INTEGRATIONS]


def prepare_existing(ctx: ServiceContext, urls: dict[str, str],
                     integrations: Sequence[DemoIntegration]) -> None:
    """An existing (big) database: the demo's integrations at the adaptors, its accounts, and
    every other integration inactive (nothing answers for them)."""
    seed_demo(ctx, urls, customers=[], integrations=integrations)
    names = {i.name for i in integrations}
    service = IntegrationService(ctx)
    for view in service.list(SYSTEM):
        if view.name not in names and view.active:
            service.update(SYSTEM, view.id, IntegrationChanges(active=False))


@contextmanager
def running_site(database_url: str = "", latency_ms: int = 30,
                 log: Callable[[str], None] = print,
                 server_env: dict[str, str] | None = None) -> Iterator[Site]:
    """Adaptors, the database (the seeded demo, or ``database_url`` prepared) and Streamlit on
    free loopback ports (``server_env`` added to its environment), stopped on exit."""
    integrations = bench_integrations(latency_ms)
    # An existing database keeps one home, so its secret key (which encrypted the integrations'
    # secrets on the first run) is found again; the seeded demo gets a new one each time.
    home = (EXISTING_HOME if database_url
            else Path(tempfile.mkdtemp(prefix="linker-browser-bench-")))
    home.mkdir(parents=True, exist_ok=True)
    settings = (Settings(home=home, database_url=database_url, secret_key=None) if database_url
                else demo_settings(home))
    with DemoAdaptors(dict.fromkeys((i.key for i in integrations), 0),
                      integrations=integrations) as adaptors:
        ctx = open_demo_context(settings)
        start = time.perf_counter()
        try:
            if database_url:
                prepare_existing(ctx, adaptors.urls, integrations)
            else:
                seed_demo(ctx, adaptors.urls, integrations=integrations)
                seed_history(ctx.db)
        finally:
            ctx.db.dispose()
        log(f"database: {display_url(settings.database_url)} (prepared in "
            f"{time.perf_counter() - start:.1f} s); adaptors answer in ~{latency_ms} ms")
        port = free_port()
        env: dict[str, str | None] = {"LINKER_DEV_ROLE": None, **(server_env or {})}
        process = start_dashboard(settings, port, env=env,
                                  log=home / "dashboard.log")
        try:
            url = dashboard_url(port)
            wait_for_dashboard(url, process, timeout_s=120)
            log(f"console: {url} (Streamlit pid {process.pid}, log {home / 'dashboard.log'})")
            yield Site(url, settings.database_url, home, process.pid)
        finally:
            stop_process(process)


def new_profile(site: Site) -> Profile:
    """A profile of someone Shop and Loyalty both know by one email, created through the
    services (auto-linking links both)."""
    shop, loyalty = (load_dataset(name, DEMO_DATASET_SIZE) for name in ("shop", "loyalty"))
    ctx = open_demo_context(Settings(home=site.home, database_url=site.database_url,
                                     secret_key=None))
    try:
        free_loyalty = {r.external_customer_id for r in free_records(ctx, loyalty, "Loyalty")}
        for record in free_records(ctx, shop, "Shop"):
            found = loyalty.search(emails=[record.emails[0]])
            if len(found) == 1 and found[0].external_customer_id in free_loyalty:
                break
        else:
            raise RuntimeError("no free person in both Shop and Loyalty")
        created = CustomerService(ctx).create(SYSTEM, record.name, [record.emails[0]])
        ids = {r.integration_name: r.integration_id for r in created.autolink if r.link_id}
    finally:
        ctx.db.dispose()
    if not {"Shop", "Loyalty"} <= set(ids):
        raise RuntimeError(f"the new profile was not linked to Shop and Loyalty: {ids}")
    return Profile(record.name, record.emails[0], ids["Shop"], ids["Loyalty"])


def repetition(site: Site, browser: Any, only: str = "",
               log: Callable[[str], None] = print) -> list[Timing]:
    """One repetition: a new session (browser context), a new profile, every action."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        page = context.new_page()
        wire = watch(page)
        clock = ExchangeClock(site.database_url)
        try:
            return run_actions(page, wire, clock, all_actions(site.url, new_profile(site)),
                               only, log)
        finally:
            clock.engine.dispose()
    finally:
        context.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium, headless, launched as the e2e tests launch it."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# -- the report ---------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (0 for none)."""
    return statistics.median(values) if values else 0.0


def summary(rounds: Sequence[Sequence[Timing]]) -> list[dict[str, Any]]:
    """Per action (in order): median / min / max seconds over the repetitions that worked,
    medians of the other figures, and the failures."""
    names = list(dict.fromkeys(t.action for r in rounds for t in r))
    rows = []
    for name in names:
        all_of = [t for r in rounds for t in r if t.action == name]
        ok = [t for t in all_of if not t.error]
        secs = [t.seconds for t in ok if t.seconds is not None]
        row: dict[str, Any] = {"action": name, "n": len(secs),
                               "errors": [t.error for t in all_of if t.error]}
        if secs:
            row.update(median=median(secs), min=min(secs), max=max(secs))
            for key in ("runs", "seen_runs", "running_s", "exchanges", "adaptor_s", "messages",
                        "kbytes", "deltas", "elements", "nodes", "browser_s"):
                row[key] = median([getattr(t, key) for t in ok])
            row["added"] = median([t.seconds - t.adaptor_s for t in ok  # type: ignore[operator]
                                   ])
        rows.append(row)
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a Markdown table (milliseconds)."""
    lines = ["| action | median | min–max | runs (server / seen) | adaptors | added | "
             "browser main thread | KB sent | deltas | elements |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if not r["n"]:
            lines.append(f"| {r['action']} | failed: {r['errors'][0][:80]} | | | | | | | | |")
            continue
        lines.append(
            f"| {r['action']} | {r['median'] * 1000:.0f} | {r['min'] * 1000:.0f}–"
            f"{r['max'] * 1000:.0f} | {r['runs']:g} / {r['seen_runs']:g} | "
            f"{r['adaptor_s'] * 1000:.0f} ({r['exchanges']:g}) | {r['added'] * 1000:.0f} | "
            f"{r['browser_s'] * 1000:.0f} | {r['kbytes']:.0f} | {r['deltas']:g} | "
            f"{r['elements']:g} |" + (f" {len(r['errors'])} failed" if r["errors"] else ""))
    return "\n".join(lines)


def git_commit() -> str:
    """The checkout's commit (``+dirty`` when files differ)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain",
                                                                   "--untracked-files=no")
                                                  else "")


def load() -> str:
    """The load averages (1, 5, 15 minutes)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    """Start the site, run ``--repeat`` repetitions, print the table (and write ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=30)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", default="", help="an existing database to use")
    where.add_argument("--big", action="store_true",
                       help=f"use {BIG_DB.relative_to(ROOT)} (bench/gen_big_db.py)")
    parser.add_argument("--only", default="", help="only the actions whose name holds this")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                        help="set in Streamlit's environment, e.g. "
                             "STREAMLIT_RUNNER_POST_SCRIPT_GC=false (repeatable)")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is absent", file=sys.stderr)
        return 2
    url = f"sqlite:///{BIG_DB}" if args.big else args.database_url
    if args.big and not BIG_DB.exists():
        print(f"{BIG_DB} is absent: run bench/gen_big_db.py first", file=sys.stderr)
        return 2
    facts = {"machine": describe_machine(), "commit": git_commit(), "load_before": load()}
    print(f"{facts['machine']}\ncommit: {facts['commit']}; load before: {facts['load_before']}")
    rounds = []
    server_env = dict(item.split("=", 1) for item in args.server_env)
    if server_env:
        print(f"server environment: {server_env}")
    with running_site(url, args.latency_ms, server_env=server_env) as site, \
            chromium() as browser:
        for n in range(args.repeat):
            print(f"repetition {n + 1} of {args.repeat}", flush=True)
            rounds.append(repetition(site, browser, args.only))
    facts["load_after"] = load()
    rows = summary(rounds)
    print(f"\nload after: {facts['load_after']}; {args.repeat} repetition(s); milliseconds; "
          "adaptors = union of the exchanges' intervals (count)\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({**facts, "summary": rows, "rounds": [
            [asdict(t) for t in r] for r in rounds]}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
