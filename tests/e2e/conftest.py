"""End-to-end fixtures: the seeded demo served for real, and Debian's chromium.

``demo_site`` (one per session) starts the demo's reference adaptors on free loopback ports,
seeds a demo database in a temporary LINKER_HOME through ``linker.demo`` (as ``linker demo
--no-dashboard`` does), starts Streamlit on a free port as a child process, waits for its health
endpoint and stops everything at teardown. The browser is Debian's ``/usr/bin/chromium``
(Playwright's own download does not work here): tests are skipped, with the reason, without it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from linker.demo import (
    DEMO_INTEGRATIONS,
    DemoAdaptors,
    SeedReport,
    dashboard_url,
    demo_settings,
    open_demo_context,
    seed_demo,
    start_dashboard,
    stop_process,
    wait_for_dashboard,
)
from linker.demo_history import seed_history

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = (f"{CHROMIUM} is absent; install it with `apt-get install -y chromium` "
                    "(Playwright's browser download does not work here)")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
STARTUP_TIMEOUT_S = 90.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-results" / "e2e"
"""Where a failing flow's screenshot goes (gitignored)."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an ``e2e`` test, skipped (with the reason) without
    chromium; first, so that ``-m`` selection sees the mark."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)
            if not CHROMIUM.exists():
                item.add_marker(pytest.mark.skip(reason=CHROMIUM_MISSING))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test item, so fixtures can see whether it failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def screenshot_on_failure(request: pytest.FixtureRequest, page: Any) -> Iterator[None]:
    """Save the page as ``test-results/e2e/<test>.png`` when the flow failed (the page is
    still open: this fixture is torn down before ``page``)."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot of the failed flow: {path}")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright launches Debian's chromium, headless, with container-safe flags."""
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM),
            "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """A desktop-sized window, so the workbench's columns sit side by side."""
    return {**browser_context_args, "viewport": {"width": 1440, "height": 1000}}


def free_port() -> int:
    """A port nobody listens on right now (loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DemoSite:
    """The running demo: the dashboard's URL and what the seed created."""

    url: str
    report: SeedReport
    log: Path


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    """Adaptors + seeded demo database + the dashboard on free ports, for the whole session."""
    if not CHROMIUM.exists():
        pytest.skip(CHROMIUM_MISSING)
    home = tmp_path_factory.mktemp("e2e-demo")
    settings = demo_settings(home)
    ctx = open_demo_context(settings)
    with DemoAdaptors(dict.fromkeys((i.key for i in DEMO_INTEGRATIONS), 0)) as adaptors:
        try:
            report = seed_demo(ctx, adaptors.urls)
            seed_history(ctx.db)
        finally:
            ctx.db.dispose()
        port = free_port()
        log = home / "dashboard.log"
        # Sign-in goes through the form: no development role override.
        process = start_dashboard(settings, port, env={"LINKER_DEV_ROLE": None}, log=log)
        try:
            url = dashboard_url(port)
            wait_for_dashboard(url, process, timeout_s=STARTUP_TIMEOUT_S)
            yield DemoSite(url, report, log)
        finally:
            stop_process(process)
