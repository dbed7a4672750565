"""The support lead in a real browser, on the seeded demo: lands on Health (a tile per
integration), opens Coverage and exports a worklist as CSV (a real download).

Set LINKER_SCREENSHOTS=1 to save ``docs/screenshots/health.png`` and ``coverage.png``. (The
module's name sorts before ``test_flows_e2e.py``, whose "Hostile shop" integration stays in the
session's database; the README's Health screenshot shows the demo's integrations only.)
"""

from __future__ import annotations

import csv
import io
import re

from playwright.sync_api import Page, expect

from dashboard.present import badge_label
from linker.core.permissions import SYSTEM
from linker.csvexport import safe_cell
from linker.demo import DEMO_ACCOUNTS
from linker.services.coverage import REASONS, WORKLIST_COLUMNS
from linker.services.integrations import IntegrationService
from tests.e2e import browser as e2e

LEAD = next(a for a in DEMO_ACCOUNTS if a.username == "lead")


def test_support_lead_lands_on_health_with_a_tile_per_integration(
        page: Page, demo_site: e2e.DemoSite) -> None:
    with e2e.demo_db(demo_site) as ctx:
        names = {view.name: view.id for view in IntegrationService(ctx).list(SYSTEM)}
    assert set(demo_site.report.integrations) <= set(names)
    e2e.sign_in_as(page, demo_site, LEAD)
    expect(page.get_by_role("heading", name="Health", exact=True)).to_be_visible(
        timeout=e2e.TIMEOUT_MS)
    for name, integration_id in names.items():
        tile = page.locator(e2e.key_class(f"health.tile.{integration_id}"))
        expect(tile.get_by_text(name, exact=True)).to_be_visible(timeout=e2e.TIMEOUT_MS)
        expect(tile.get_by_text("Success", exact=True)).to_be_visible(timeout=e2e.TIMEOUT_MS)
    # The seeded month of history gives the charts lines and bars.
    expect(page.locator(e2e.key_class("health.latency_chart")).locator(".main-svg").first
           ).to_be_visible(timeout=e2e.TIMEOUT_MS)
    expect(page.locator(e2e.key_class("health.errors_chart")).locator(".main-svg").first
           ).to_be_visible(timeout=e2e.TIMEOUT_MS)
    e2e.wait_for_app(page)
    e2e.refresh_screenshot(page, "health.png")


def test_support_lead_exports_a_coverage_worklist_as_csv(page: Page,
                                                          demo_site: e2e.DemoSite) -> None:
    e2e.sign_in_as(page, demo_site, LEAD)
    e2e.open_page(page, "Coverage")
    integration_box = page.get_by_role("combobox", name="Integration")
    expect(integration_box).to_have_value(re.compile(r"\S"), timeout=e2e.TIMEOUT_MS)
    chosen = integration_box.input_value()
    reason_box = page.get_by_role("combobox", name="Reason")
    expect(reason_box).to_have_value(re.compile(r"^Every reason \(\d+\)$"))
    total = int(re.findall(r"\d+", reason_box.input_value())[0])
    assert total > 0, "the seeded demo leaves profiles unlinked"
    expect(page.get_by_text(re.compile(r"^Page 1 · \d+ profile\(s\)$"))).to_be_visible()

    # The worklist's first row as the page shows it: the canvas grid keeps its visible cells
    # in an accessible (visually hidden) table.
    worklist = page.get_by_role("grid", include_hidden=True).filter(
        has=page.get_by_role("columnheader", name="What happened", include_hidden=True))
    expect(worklist).to_have_count(1, timeout=e2e.TIMEOUT_MS)
    header = worklist.get_by_role("columnheader", include_hidden=True).all_text_contents()
    assert header[:4] == ["Customer", "Name", "Email", "Reason"], header
    first_row = worklist.get_by_role("row", include_hidden=True).nth(1).get_by_role(
        "gridcell", include_hidden=True)
    expect(first_row.first).not_to_be_empty(timeout=e2e.TIMEOUT_MS)
    shown = dict(zip(header, first_row.all_text_contents(), strict=False))

    with page.expect_download(timeout=e2e.TIMEOUT_MS) as download_info:
        page.locator(e2e.key_class("coverage.export")).get_by_role("button").click()
    download = download_info.value
    with e2e.demo_db(demo_site) as ctx:
        integration_id = e2e.integration(ctx, chosen).id
    assert download.suggested_filename == f"worklist-{integration_id}-all.csv"
    rows = list(csv.reader(io.StringIO(download.path().read_text(encoding="utf-8"))))
    assert tuple(rows[0]) == WORKLIST_COLUMNS
    data = [dict(zip(WORKLIST_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert len(data) == total
    # The export neutralises cells a spreadsheet would run as formulas (an id may start "-").
    assert (data[0]["customer_id"], data[0]["name"], data[0]["email"]) == tuple(
        safe_cell(shown[column]) for column in ("Customer", "Name", "Email"))
    assert badge_label(data[0]["reason"]) == shown["Reason"]
    assert {r["reason"] for r in data} <= set(REASONS)
    e2e.refresh_screenshot(page, "coverage.png")
