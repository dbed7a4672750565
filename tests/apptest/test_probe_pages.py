"""Scheduled probes in the console: the Integrations page's probe form (admins save, errors
per field, other roles read), the Health tiles' probe lines and report card links, and the
debugger opening a card from ``?run=<id>``. The probes run against the reference adaptor
over loopback (and a closed port for the failing one)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard import state
from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.core.probes import ProbeSettingsInput
from linker.services.facade import Services
from linker.services.probes import TICK_S
from tests.apptest.conftest import make_integration, shop_person, texts


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


def badges(at: AppTest) -> list[str]:
    return [str(m.value).split("[", 1)[1].rstrip("]") for m in at.markdown
            if "-badge[" in str(m.value)]


def links(at: AppTest) -> list[str]:
    return [str(p.proto.label) for p in at.get("page_link")]


def test_admin_saves_probe_settings_with_errors_named_per_field(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    at = app_as("admin", page="integrations.py")
    key = f"integ.{view.id}.probe"
    assert any(e.label == "Scheduled conformance probe: off" for e in at.expander)
    at.toggle(key=key + ".enabled").set_value(True)
    at.text_input(key=key + ".email").input("not an email")
    ok(at.button(key=key + ".save").click().run())
    assert any(e.startswith("Known email: ") for e in texts(at.error)), texts(at.error)
    assert not services.probes.settings(SYSTEM, view.id).enabled  # nothing saved
    email = shop_person("unique").email
    at.text_input(key=key + ".email").input(email)
    at.number_input(key=key + ".every").set_value(5)
    at.number_input(key=key + ".slo").set_value(750.0)
    ok(at.button(key=key + ".save").click().run())
    assert "Saved the probe settings of Shop." in texts(at.success)
    saved = services.probes.settings(SYSTEM, view.id)
    assert (saved.enabled, saved.every_minutes, saved.p95_slo_ms, saved.known_email) == (
        True, 5, 750.0, email)
    assert any(e.label == "Scheduled conformance probe: on" for e in at.expander)


def test_developers_read_the_probe_settings_without_a_form(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    services.probes.configure(SYSTEM, view.id, ProbeSettingsInput(
        True, 20, 900.0, shop_person("unique").email))
    at = ok(app_as("developer", page="integrations.py"))
    assert "Probed every 20 min, p95 SLO 900 ms." in texts(at.caption)
    assert not [b for b in at.button if str(b.key).startswith(f"integ.{view.id}.probe")]


@pytest.fixture
def probed(services: Services, shop_url: str) -> dict[str, int]:
    """Shop (passing, under its SLO) and Dead (unreachable) with one probe each, and Off
    (no probe)."""
    email = shop_person("unique").email
    shop = make_integration(services, "Shop", shop_url)
    dead = make_integration(services, "Dead", "http://127.0.0.1:9/", timeout_s=1.0)
    off = make_integration(services, "Off", shop_url)
    services.probes.configure(SYSTEM, shop.id, ProbeSettingsInput(True, 15, 60_000.0, email))
    services.probes.configure(SYSTEM, dead.id, ProbeSettingsInput(True, 15, None, email))
    results = {r.integration_id: r for r in services.probes.run_due(SYSTEM)}
    assert set(results) == {shop.id, dead.id}
    return {"shop": shop.id, "dead": dead.id, "off": off.id,
            "shop_card": results[shop.id].card.id,  # type: ignore[union-attr]
            "dead_card": results[dead.id].card.id}  # type: ignore[union-attr]


def test_health_tiles_show_each_probe_and_why(app_as: Callable[..., AppTest],
                                              probed: dict[str, int]) -> None:
    at = ok(app_as("agent"))
    # tiles by name: Dead, Off, Shop; each tile's health badge, then its probe's
    assert badges(at) == ["failing", "degraded", "untested", "healthy", "passing"]
    captions = texts(at.caption)
    dead = next(c for c in captions if "Degraded: failed" in c)
    assert "(failed)" in dead and "Reachable" in dead and "next due" in dead
    shop = next(c for c in captions if c.startswith("Every 15 min") and "OK:" in c)
    assert "SLO 60000 ms" in shop and "within the SLO" in shop
    assert not any(c.startswith("No scheduled probe") for c in captions)  # Off: no line
    assert links(at) == []  # agents may not open report cards


def test_developers_get_a_link_to_each_report_card(app_as: Callable[..., AppTest],
                                                   probed: dict[str, int]) -> None:
    at = ok(app_as("developer"))
    assert links(at) == [f"Open report card {probed['dead_card']}",
                         f"Open report card {probed['shop_card']}"]


def test_the_debugger_opens_the_linked_report_card(app_as: Callable[..., AppTest],
                                                   probed: dict[str, int]) -> None:
    at = app_as("developer", page="debugger.py")
    at.query_params["run"] = str(probed["dead_card"])
    at = ok(at.run())
    assert at.selectbox(key="conf.integration").value == probed["dead"]
    assert at.selectbox(key="conf.history").value == probed["dead_card"]
    card = at.table[0].value  # the report card is a static table
    assert card["Result"].iloc[0] == "fail"
    assert any("Dead fails the required checks" in e for e in texts(at.error))


def test_on_sqlite_the_console_runs_due_probes_in_its_own_process(
        app_as: Callable[..., AppTest], linker_env: Settings) -> None:
    ok(app_as("agent"))
    ticker = state._probe_ticker_for(linker_env.database_url)  # the one the frame started
    assert ticker is not None and ticker.alive and ticker.interval_s == TICK_S
    st.cache_resource.clear()  # what a restart does: the ticker stops
    assert not ticker.alive
