"""Health page: every role lands on it; tiles, statuses (untested without traffic), the window
switch, both charts, the refreshing fragment; adaptor error text shown as text."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from linker.services.facade import Services
from linker.store.models import ExchangeRecord
from tests.apptest.conftest import ROLES, make_integration, texts

PAGE = "health.py"
HOSTILE = "**boom** <img src=x onerror=alert(1)> [x](http://tracker.example/p.png) :red[hi]"


def add_exchanges(services: Services, integration_id: int, name: str, *,
                  ok: int, failed: int = 0, ago: timedelta = timedelta(minutes=5)) -> None:
    at = datetime.now(UTC) - ago
    with services.ctx.db.session() as s:
        for n in range(ok + failed):
            error = "http_status" if n >= ok else None
            s.add(ExchangeRecord(
                integration_id=integration_id, integration_name=name, actor="agent",
                kind="search", trigger="search", correlation_id=f"c{n}", started_at=at,
                elapsed_ms=20.0 + n, method="POST", url="http://127.0.0.1:1/",
                request_headers={}, request_body="{}", response_status=500 if error else 200,
                error_kind=error, error_message=HOSTILE if error else None))


@pytest.fixture
def seeded(services: Services) -> dict[str, int]:
    shop = make_integration(services, "Shop", "http://127.0.0.1:8401/")
    flaky = make_integration(services, "Flaky", "http://127.0.0.1:8402/")
    new = make_integration(services, "Brand new", "http://127.0.0.1:8403/")
    add_exchanges(services, shop.id, "Shop", ok=30)
    add_exchanges(services, flaky.id, "Flaky", ok=1, failed=3)
    add_exchanges(services, flaky.id, "Flaky", ok=5, ago=timedelta(days=3))
    return {"shop": shop.id, "flaky": flaky.id, "new": new.id}


def badges(at: AppTest) -> list[str]:
    """The status badges, in page order (``:green-badge[healthy]`` → ``healthy``)."""
    return [str(m.value).split("[", 1)[1].rstrip("]") for m in at.markdown
            if "-badge[" in str(m.value)]


def tile_text(at: AppTest) -> str:
    return " ".join(texts(at.markdown) + texts(at.caption))


@pytest.mark.parametrize("role", ROLES)
def test_every_role_lands_on_health(app_as: Callable[..., AppTest], seeded: dict[str, int],
                                    role: str) -> None:
    at = app_as(role)
    assert not at.exception
    assert "Health" in texts(at.title)
    shown = tile_text(at)
    assert "Shop" in shown and "Flaky" in shown and "Brand new" in shown
    assert "Untested: no call in the window" in shown
    assert [m.label for m in at.metric][:4] == ["Success", "p50", "p95", "Calls"]


def test_tiles_statuses_and_figures(app_as: Callable[..., AppTest],
                                    seeded: dict[str, int]) -> None:
    at = app_as("agent")
    values = [(m.label, m.value) for m in at.metric]
    # tiles in name order: Brand new, Flaky, Shop
    assert values[:4] == [("Success", "–"), ("p50", "–"), ("p95", "–"), ("Calls", "0")]
    assert values[4:8] == [("Success", "25.0 %"), ("p50", "21 ms"), ("p95", "23 ms"),
                           ("Calls", "4")]
    assert values[8] == ("Success", "100.0 %") and values[11] == ("Calls", "30")
    assert badges(at) == ["untested", "failing", "healthy"]


def test_last_error_is_text_not_markup(app_as: Callable[..., AppTest],
                                       seeded: dict[str, int]) -> None:
    at = app_as("developer")
    captions = texts(at.caption)
    assert any(c.startswith("Last error: http_status at ") and c.endswith(HOSTILE)
               for c in captions)
    raw = [str(c.value) for c in at.caption]
    # every markup character reaches Markdown escaped
    last = [c for c in raw if c.startswith("Last error")]
    assert last and not any(re.search(r"(?<!\\)[<\[*]", c) for c in last), last


def test_window_switch(app_as: Callable[..., AppTest], seeded: dict[str, int]) -> None:
    at = app_as("support_lead")
    assert at.radio(key="health.window").value == "24h"
    at.radio(key="health.window").set_value("7d").run()
    assert not at.exception
    calls = [m.value for m in at.metric if m.label == "Calls"]
    assert calls == ["0", "9", "30"]  # the 3-day-old calls count in the week
    at.radio(key="health.window").set_value("1h").run()
    assert [m.value for m in at.metric if m.label == "Calls"] == ["0", "4", "30"]


def test_charts_are_plotly_with_the_series(app_as: Callable[..., AppTest],
                                           seeded: dict[str, int]) -> None:
    at = app_as("admin")
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    latency = json.loads(charts[0].proto.spec)
    names = [trace["name"] for trace in latency["data"]]
    assert names == ["Flaky p95", "Flaky p50", "Shop p95", "Shop p50"]
    errors = json.loads(charts[1].proto.spec)
    assert [trace["name"] for trace in errors["data"]] == ["http_status"]
    assert sum(errors["data"][0]["y"]) == 3


def test_an_error_kind_is_in_the_legend_once(app_as: Callable[..., AppTest], services: Services,
                                             seeded: dict[str, int]) -> None:
    add_exchanges(services, seeded["shop"], "Shop", ok=0, failed=2)
    at = app_as("admin")
    errors = json.loads(at.get("plotly_chart")[1].proto.spec)
    traces = [(t["name"], t.get("showlegend", True)) for t in errors["data"]]
    assert traces == [("http_status", True), ("http_status", False)]  # Flaky's row, then Shop's


def test_no_integration_says_so(app_as: Callable[..., AppTest]) -> None:
    at = app_as("agent")
    assert not at.exception
    assert any("No integration yet" in i for i in texts(at.info))


def test_the_live_part_is_a_refreshing_fragment(app_as: Callable[..., AppTest],
                                                 services: Services) -> None:
    # AppTest never fires run_every by itself (streamlit-notes §2): check the fragment is
    # declared with a few seconds' period, and that a rerun shows new traffic.
    source = (Path(__file__).resolve().parents[2] / "pages" / PAGE).read_text()
    assert "@st.fragment(run_every=REFRESH_S)" in source
    shop = make_integration(services, "Shop", "http://127.0.0.1:8401/")
    at = app_as("agent")
    assert [m.value for m in at.metric if m.label == "Calls"] == ["0"]
    add_exchanges(services, shop.id, "Shop", ok=2)
    st.cache_data.clear()  # the 5-second tick, without waiting for it
    at.run()
    assert [m.value for m in at.metric if m.label == "Calls"] == ["2"]
