"""The Adaptor debugger page with AppTest: workflows step by step, the exchange log with
replay and cURL, conformance report cards; for admins and developers only, secrets never
shown."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from linker.core.permissions import SYSTEM
from linker.services.facade import Services
from tests.apptest.conftest import make_integration, shop_person, shown, table, texts

PAGE = "debugger.py"
PASSWORD = "dbg-basic-password-7731"


def everything(at: AppTest) -> str:
    parts = (texts(at.subheader) + texts(at.markdown) + texts(at.caption) + texts(at.code)
             + texts(at.error) + texts(at.info) + texts(at.success) + texts(at.warning))
    return "\n".join(parts + [shown(e.label) for e in at.expander])


def ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


def found(at: AppTest, email: str) -> AppTest:
    at.text_input(key="dbg.find.email").input(email)
    return ok(at.button(key="dbg.find.submit").click().run())


@pytest.mark.parametrize("role", ["admin", "developer"])
def test_allowed_roles_render_the_three_tabs(app_as: Callable[..., AppTest], role: str) -> None:
    at = ok(app_as(role, page=PAGE))
    assert [t.value for t in at.title] == ["Lookup Adaptor Debugger"]
    assert [t.label for t in at.tabs] == ["Workflows", "Exchange log", "Conformance"]


@pytest.mark.parametrize("role", ["agent", "support_lead"])
def test_other_roles_cannot_reach_the_page(app_as: Callable[..., AppTest], role: str) -> None:
    at = app_as(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(f"../pages/{PAGE}")


def test_customer_not_found(app_as: Callable[..., AppTest]) -> None:
    at = found(app_as("developer", page=PAGE), "nobody@example.com")
    assert any(w.startswith("Customer not found") for w in texts(at.warning))


@pytest.mark.parametrize(("role", "may_link"), [("admin", True), ("developer", False)])
def test_autolink_workflow_step_by_step_and_link_only_on_click(
        app_as: Callable[..., AppTest], services: Services, shop_url: str, role: str,
        may_link: bool) -> None:
    person = shop_person("unique")
    created = services.customers.create(SYSTEM, person.name, [person.email], [])  # no autolink
    view = make_integration(services, "Shop", shop_url, autolink_enabled=True,
                            autolink_fields=("email",), password=PASSWORD, username="linker")
    at = found(app_as(role, page=PAGE), person.email)
    at.radio(key="dbg.workflow").set_value("Autolinking + Detailed")
    at = ok(at.run())
    assert at.selectbox(key="dbg.integration").value == view.id
    at = ok(at.button(key="dbg.test").click().run())
    text = everything(at)
    assert "Step 1: Auto-link lookup" in text
    assert f"Step 2: Detailed lookup of {person.external_id}" in text
    assert PASSWORD not in text
    assert services.customers.get(SYSTEM, created.customer.id).links == ()
    assert ("dbg.link" in [b.key for b in at.button]) is may_link
    if may_link:
        at = ok(at.button(key="dbg.link").click().run())
        at = ok(at.button(key="dbg.link.yes").click().run())
        links = services.customers.get(SYSTEM, created.customer.id).links
        assert [(link.integration_name, link.external_customer_id) for link in links] == [
            ("Shop", person.external_id)]
    else:
        assert "Nothing was linked" in text


def test_basic_workflow_shows_the_rows_an_agent_would_see(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    make_integration(services, "Shop", shop_url)
    person = shop_person("unique")
    services.customers.create(SYSTEM, person.name, [person.email], [])
    at = found(app_as("developer", page=PAGE), person.email)
    assert at.text_input(key="dbg.field.email").value == person.email
    at = ok(at.button(key="dbg.test").click().run())
    rows = at.dataframe(key="dbg.rows").value
    assert list(rows["External id"]) == [person.external_id]
    assert "Step 2: Detailed lookup of " + person.external_id in everything(at)


def test_exchange_log_lists_opens_replays_and_copies_as_curl(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url, username="linker", password=PASSWORD)
    exchange = services.integrations.test_connection(SYSTEM, view.id,
                                                     email=shop_person("unique").email)
    at = app_as("developer", page=PAGE)
    rows = table(at, "Id", "Correlation id")
    assert list(rows["Id"]) == [exchange.id]
    assert list(rows["Result"]) == ["ok"]
    at.session_state["log.table"] = {"selection": {"rows": [0], "columns": []}}
    at = ok(at.run())
    assert f"Exchange {exchange.id}" in texts(at.subheader)
    codes = texts(at.code)
    assert any(c.startswith("curl ") for c in codes), codes
    assert not any(PASSWORD in c for c in codes)
    at = ok(at.button(key="log.replay").click().run())
    assert any("same as the original" in s for s in texts(at.success)), texts(at.success)
    assert any(s.startswith("Replay: exchange ") for s in texts(at.subheader))
    assert PASSWORD not in everything(at)


def test_a_deep_link_opens_one_exchange(app_as: Callable[..., AppTest], services: Services,
                                        shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    exchange = services.integrations.test_connection(SYSTEM, view.id)
    at = app_as("admin", page=PAGE)
    at.query_params["exchange"] = str(exchange.id)
    at = ok(at.run())
    assert f"Exchange {exchange.id}" in texts(at.subheader)


def test_log_filters_narrow_the_page(app_as: Callable[..., AppTest], services: Services,
                                     shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    dead = make_integration(services, "Dead", "http://127.0.0.1:9/", timeout_s=1.0)
    services.integrations.test_connection(SYSTEM, view.id)
    failed = services.integrations.test_connection(SYSTEM, dead.id)
    at = app_as("developer", page=PAGE)
    assert len(table(at, "Id", "Correlation id")) == 2
    at.selectbox(key="log.error_kind").set_value("failed")
    at = ok(at.run())
    assert list(table(at, "Id", "Correlation id")["Id"]) == [failed.id]


def test_conformance_run_keeps_a_report_card(app_as: Callable[..., AppTest],
                                             services: Services, shop_url: str) -> None:
    make_integration(services, "Shop", shop_url)
    at = app_as("developer", page=PAGE)
    at.text_input(key="conf.email").input(shop_person("unique").email)
    at = ok(at.button(key="conf.run").click().run())
    assert not texts(at.error), texts(at.error)
    card = at.table[0].value  # a static table: every row shown, long text wrapped
    assert len(card) >= 8
    assert set(card["Result"]) <= {"pass", "warn", "skip"}
    assert (card["Exchange"] != "").sum() >= 6
    skipped = card[card["Result"] == "skip"]
    assert len(skipped) and set(skipped["Exchange"]) == {""}  # no "None" for a skipped check
    assert any("passes the required checks" in s for s in texts(at.success)), texts(at.error)
    at = ok(at.run())
    assert len(at.selectbox(key="conf.history").options) == 1


def diff_script(old: str, new: str) -> None:
    from linker.jsondiff import diff_bodies
    from pages.debugger import diff_view

    diff_view(diff_bodies(old, new))


def test_the_replay_diff_says_added_and_removed_without_a_null_side() -> None:
    at = ok(AppTest.from_function(diff_script, args=('{"kept": null, "gone": "Gold"}',
                                                      '{"kept": 1, "new": "5"}')).run())
    rows = table(at, "Path", "Change").to_dict("records")
    assert rows == [
        {"Path": "$.kept", "Change": "changed", "Before": "null", "After": "1"},
        {"Path": "$.gone", "Change": "removed", "Before": "Gold", "After": ""},
        {"Path": "$.new", "Change": "added", "Before": "", "After": "5"}]
