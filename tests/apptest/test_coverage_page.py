"""Coverage page: support lead and admin see totals, the trend, outcomes and worklists by reason
(paged at the database), the why of a profile and a CSV export; others cannot reach it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from linker.core.permissions import Actor, Role
from linker.services.facade import Services
from linker.store.models import AutolinkOutcome, Customer, CustomerEmail, Link
from tests.apptest.conftest import make_integration, table, texts

PAGE = "coverage.py"
HOSTILE_NAME = "=HYPERLINK(\"http://evil.example\") **x** <b>"


@pytest.fixture
def seeded(services: Services) -> dict[str, int]:
    shop = make_integration(services, "Shop", "http://127.0.0.1:8401/")
    now = datetime.now(UTC)
    with services.ctx.db.session() as s:
        for i in range(60):
            s.add(Customer(id=f"c{i:03}", name=HOSTILE_NAME if i == 1 else f"Person {i}",
                           created_at=now - timedelta(days=3)))
        s.flush()
        s.add(CustomerEmail(customer_id="c001", original="=cmd@evil.example",
                            normalized="cmd@evil.example", position=0))
        s.add(Link(customer_id="c000", integration_id=shop.id, external_customer_id="s0",
                   method="auto", created_at=now - timedelta(days=1)))
        s.add(AutolinkOutcome(customer_id="c001", integration_id=shop.id, outcome="ambiguous",
                              reason="2 shop records have this email"))
        s.add(AutolinkOutcome(customer_id="c002", integration_id=shop.id, outcome="no_match",
                              reason="no shop record has this email"))
    return {"shop": shop.id}


@pytest.mark.parametrize("role", ["admin", "support_lead"])
def test_allowed_roles_render_the_page(app_as: Callable[..., AppTest], seeded: dict[str, int],
                                       role: str) -> None:
    at = app_as(role, page=PAGE)
    assert not at.exception, at.exception
    assert "Coverage" in texts(at.title)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Profiles": "60", "Linked to at least one system": "1",
                       "Linked share": "1.7 %"}
    per = table(at, "Integration", "Linked", "Auto", "Manual")
    assert per.to_dict("records")[0]["Linked"] == 1
    trend = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert trend["data"][0]["y"][-1] == pytest.approx(100 / 60, abs=0.01)
    assert trend["data"][0]["y"][0] == 0


@pytest.mark.parametrize("role", ["developer", "agent"])
def test_other_roles_cannot_reach_the_page(app_as: Callable[..., AppTest], role: str) -> None:
    at = app_as(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(f"../pages/{PAGE}")


def test_worklist_by_reason_and_pages(app_as: Callable[..., AppTest],
                                      seeded: dict[str, int]) -> None:
    at = app_as("support_lead", page=PAGE)
    reason = at.selectbox(key="coverage.reason")
    assert reason.format_func("never_tried") == "Never tried (57)"
    first = table(at, "Customer", "Reason")
    assert len(first) == 50 and first["Customer"].iloc[0] == "c001"
    assert first["Name"].iloc[0] == HOSTILE_NAME  # a table cell: shown as the text it is
    at.button(key="coverage.next").click().run()
    second = table(at, "Customer", "Reason")
    assert list(second["Customer"]) == [f"c{i:03}" for i in range(51, 60)]
    assert at.button(key="coverage.next").disabled
    at.button(key="coverage.first").click().run()
    assert table(at, "Customer", "Reason")["Customer"].iloc[0] == "c001"
    at.selectbox(key="coverage.reason").set_value("ambiguous").run()
    rows = table(at, "Customer", "Reason")
    assert list(rows["Customer"]) == ["c001"]
    assert rows["What happened"].iloc[0] == "2 shop records have this email"
    assert rows["Open"].iloc[0] == "workbench?customer=c001"


def test_why_is_one_click_away(app_as: Callable[..., AppTest], seeded: dict[str, int]) -> None:
    at = app_as("admin", page=PAGE)
    at.selectbox(key="coverage.reason").set_value("no_match").run()
    at.selectbox(key="coverage.why").set_value("c002").run()
    assert not at.exception, at.exception
    assert "Auto-linking is off for Shop." in texts(at.info)
    assert any(c.startswith("What to do: Turn on auto-linking for Shop") for c in
               texts(at.caption))
    trail = table(at, "Step", "Outcome", "Reason")
    assert "no shop record has this email" in list(trail["Reason"])
    links = at.get("page_link")
    assert links and "customer" in str(links[0].proto)


def test_csv_export_neutralises_formulas(app_as: Callable[..., AppTest], services: Services,
                                         seeded: dict[str, int]) -> None:
    at = app_as("support_lead", page=PAGE)
    assert at.get("download_button")  # data is produced on click (a callable)
    text = services.coverage.export_csv(Actor("lead", Role.SUPPORT_LEAD), seeded["shop"],
                                        "ambiguous")
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["name"].startswith("'=HYPERLINK")
    assert row["email"] == "'=cmd@evil.example"
