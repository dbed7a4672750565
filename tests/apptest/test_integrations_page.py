"""Integrations page: admin adds, edits, tests, deactivates and deletes; developer reads only;
agent and support lead cannot reach it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from linker.core.permissions import SYSTEM
from linker.services.facade import Services
from linker.services.integrations import HeaderSpec
from linker.store.models import ExchangeRecord, Integration
from tests.apptest.conftest import make_integration, shop_person, shown, table, texts

PAGE = "integrations.py"
NEW = 0
PASSWORD = "basic-pass-123"
SIGNING_KEY = "signing-key-abcdef"
HEADER_SECRET = "header-secret-xyz"


def stored_secrets(services: Services, name: str) -> dict[str, Any]:
    """The decrypted secrets of an integration, read straight from the table."""
    box = services.ctx.secrets
    with services.ctx.db.session(readonly=True) as s:
        row = s.scalar(select(Integration).where(Integration.name_key == name.lower()))
        assert row is not None
        return {"password": box.decrypt(row.password_enc),
                "signing_key": box.decrypt(row.signing_key_enc),
                "headers": {h["name"]: box.decrypt(h["value_enc"]) if h["secret"] else h["value"]
                            for h in row.headers}}


def all_text(at: AppTest) -> str:
    """Every piece of text the page shows, to check no secret leaks."""
    parts = texts(at.markdown) + texts(at.caption) + texts(at.code) + texts(at.error)
    parts += texts(at.success) + texts(at.info) + [str(t.value) for t in at.text_input]
    parts += [str(d.value) for d in at.dataframe]
    return "\n".join(parts)


def column_with(at: AppTest, key: str) -> Any:
    """The column holding the text input ``key`` (its errors show right there)."""
    return next(c for c in at.columns if any(t.key == key for t in c.text_input))


def editor(at: AppTest, key: str, rows: list[dict[str, Any]]) -> None:
    at.session_state[key] = {"edited_rows": {}, "added_rows": rows, "deleted_rows": []}


# -- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "developer"])
def test_allowed_roles_render_the_page(app_as: Callable[..., AppTest], services: Services,
                                       shop_url: str, role: str) -> None:
    make_integration(services, "Shop", shop_url, autolink_enabled=True,
                     autolink_fields=("email",))
    at = app_as(role, page=PAGE)
    assert not at.exception
    assert "Integrations" in texts(at.title)
    rows = table(at, "Name", "Auto-link")
    assert list(rows["Name"]) == ["Shop"]
    assert list(rows["Auto-link"]) == ["on: Email"]
    assert list(rows["Status (24 h)"]) == ["untested"]  # no traffic yet (issue 8)


@pytest.mark.parametrize("role", ["agent", "support_lead"])
def test_other_roles_cannot_reach_the_page(app_as: Callable[..., AppTest], role: str) -> None:
    at = app_as(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(f"../pages/{PAGE}")


def test_developer_sees_settings_but_no_edit_controls(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    make_integration(services, "Shop", shop_url, password=PASSWORD, signing_key=SIGNING_KEY,
                     username="shopuser",
                     headers=(HeaderSpec("X-Api-Key", HEADER_SECRET, True),
                              HeaderSpec("X-Tenant", "acme", False)))
    at = app_as("developer", page=PAGE)
    assert not at.exception
    assert NEW not in at.selectbox(key="integrations.selected").options
    keys = [b.key for b in at.button]
    assert not [k for k in keys if k and (k.endswith(".save") or k.endswith(".deactivate")
                                          or k.endswith(".delete"))]
    assert not at.data_editor and not at.toggle and not at.radio
    settings = table(at, "setting", "value")
    values = dict(zip(settings["setting"], settings["value"], strict=True))
    assert values["Basic auth password"] == "set (hidden)"
    assert values["Signing key"] == "set (hidden)"
    headers = table(at, "header", "value")
    assert dict(zip(headers["header"], headers["value"], strict=True)) == {
        "X-Api-Key": "secret (hidden)", "X-Tenant": "acme"}
    text = all_text(at)
    assert PASSWORD not in text and SIGNING_KEY not in text and HEADER_SECRET not in text


# -- add ----------------------------------------------------------------------------------------


def test_the_add_form_opens_from_a_button_not_from_the_picker(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    at = app_as("admin", page=PAGE)
    assert at.selectbox(key="integrations.selected").value == view.id
    assert "integ.new.name" not in [t.key for t in at.text_input]
    at.button(key="integrations.add").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="integrations.selected").value == NEW
    assert at.button(key="integrations.add").disabled
    assert "Add an integration" in texts(at.subheader)
    developer = app_as("developer", page=PAGE)
    assert "integrations.add" not in [b.key for b in developer.button]


def test_admin_adds_an_integration_with_every_setting(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    at = app_as("admin", page=PAGE)
    assert at.selectbox(key="integrations.selected").value == NEW  # nothing yet: the add form
    p = "integ.new."
    at.text_input(key=p + "name").input("Shop")
    at.text_input(key=p + "url").input(shop_url)
    at.text_input(key=p + "username").input("shopuser")
    at.text_input(key=p + "password.value").input(PASSWORD)
    at.text_input(key=p + "realm").input("shop-realm")
    at.text_input(key=p + "signing_key.value").input(SIGNING_KEY)
    editor(at, p + "headers", [{"name": "X-Api-Key", "value": HEADER_SECRET, "secret": True},
                               {"name": "X-Tenant", "value": "acme", "secret": False}])
    # The form starts with email / Email and phone / Phone: keep the first, edit the second.
    at.session_state[p + "query_attrs"] = {
        "edited_rows": {1: {"attribute": "orderNumber", "label": "Order Number"}},
        "added_rows": [], "deleted_rows": []}
    editor(at, p + "result_attrs", [{"attribute": "name", "label": "Name"}])
    at.toggle(key=p + "autolink_enabled").set_value(True)
    at.multiselect(key=p + "autolink_fields").set_value(["email", "mobile"])
    at.toggle(key=p + "overwrite").set_value(True)
    at.number_input(key=p + "timeout").set_value(7.5)
    at.button(key=p + "save").click().run()
    assert not at.exception, at.exception
    assert "Added Shop." in texts(at.success)
    view = services.integrations.get_by_name(SYSTEM, "shop")
    assert (view.url, view.username, view.realm) == (shop_url, "shopuser", "shop-realm")
    assert view.password_set and view.signing_key_set
    assert [(a.attribute, a.label) for a in view.search_query_attributes] == [
        ("email", "Email"), ("orderNumber", "Order Number")]
    assert [(a.attribute, a.label) for a in view.search_results_attributes] == [
        ("name", "Name")]
    assert view.autolink_enabled and view.autolink_fields == ("email", "mobile")
    assert view.overwrite_existing and view.timeout_s == 7.5 and view.active
    assert stored_secrets(services, "Shop") == {
        "password": PASSWORD, "signing_key": SIGNING_KEY,
        "headers": {"X-Api-Key": HEADER_SECRET, "X-Tenant": "acme"}}
    # The new integration is selected, its secrets shown only as "set".
    assert at.selectbox(key="integrations.selected").value == view.id
    assert at.radio(key=f"integ.{view.id}.password.action").value == "Keep"
    assert "Basic auth password: :material/lock: set" in [r.label for r in at.radio]
    text = all_text(at)
    assert PASSWORD not in text and SIGNING_KEY not in text and HEADER_SECRET not in text


def test_validation_error_shows_beside_the_field_and_keeps_what_was_typed(
        app_as: Callable[..., AppTest], services: Services) -> None:
    at = app_as("admin", page=PAGE)
    p = "integ.new."
    at.text_input(key=p + "name").input("Remote Shop")
    at.text_input(key=p + "url").input("http://adaptor.example.com/lookup")
    at.text_input(key=p + "username").input("someone")
    at.button(key=p + "save").click().run()
    assert not at.exception
    url_errors = texts(column_with(at, p + "url").error)
    assert len(url_errors) == 1 and "use https" in url_errors[0]
    assert not column_with(at, p + "name").error
    assert at.text_input(key=p + "name").value == "Remote Shop"
    assert at.text_input(key=p + "url").value == "http://adaptor.example.com/lookup"
    assert at.text_input(key=p + "username").value == "someone"
    assert any("Nothing was saved" in e for e in texts(at.error))
    assert services.integrations.list(SYSTEM) == []
    # Fixing the field and saving again clears the message.
    at.text_input(key=p + "url").input("https://adaptor.example.com/lookup")
    at.button(key=p + "save").click().run()
    assert "Added Remote Shop." in texts(at.success)
    assert not at.error


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def exchanges_stored(services: Services) -> int:
    with services.ctx.db.session(readonly=True) as s:
        return len(s.scalars(select(ExchangeRecord.id)).all())


def test_a_new_integration_starts_with_email_and_phone_query_attributes(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    at = app_as("admin", page=PAGE)
    at.text_input(key="integ.new.name").input("Shop")
    at.text_input(key="integ.new.url").input(shop_url)
    at.button(key="integ.new.save").click().run()
    assert "Added Shop." in texts(at.success)
    view = services.integrations.get_by_name(SYSTEM, "Shop")
    assert [(a.attribute, a.label) for a in view.search_query_attributes] == [
        ("email", "Email"), ("phone", "Phone")]


def test_the_add_form_tests_the_unsaved_settings_and_stores_nothing(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    at = app_as("admin", page=PAGE)
    p = "integ.new."
    person = shop_person("unique")
    at.text_input(key=p + "name").input("Shop")
    at.text_input(key=p + "url").input(shop_url)
    at.text_input(key=p + "signing_key.value").input(SIGNING_KEY)
    editor(at, p + "headers", [{"name": "X-Api-Key", "value": HEADER_SECRET, "secret": True}])
    at.text_input(key=p + "test.email").input(person.email)
    at.button(key=p + "test.run").click().run()
    assert not at.exception, at.exception
    assert any("Shop answered in" in m and "1 result(s). Nothing is saved yet" in m
               for m in texts(at.success)), texts(at.success)
    assert any(m.startswith("**Exchange (not stored)**") for m in texts(at.markdown))
    assert any(f'"{person.external_id}"' in c for c in texts(at.code))
    shown_text = "\n".join(texts(at.markdown) + texts(at.code) + texts(at.caption)
                           + [str(d.value) for d in at.dataframe])
    assert SIGNING_KEY not in shown_text and HEADER_SECRET not in shown_text
    assert services.integrations.list(SYSTEM) == [] and exchanges_stored(services) == 0
    # What was typed is still there; Add keeps it, and the test panel goes.
    assert at.text_input(key=p + "name").value == "Shop"
    at.button(key=p + "save").click().run()
    assert "Added Shop." in texts(at.success)
    assert not any("Nothing is saved yet" in m for m in texts(at.success))
    assert services.integrations.get_by_name(SYSTEM, "Shop").signing_key_set


def test_testing_unsaved_settings_that_fail_says_so_and_a_passing_test_replaces_it(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    at = app_as("admin", page=PAGE)
    p = "integ.new."
    at.text_input(key=p + "name").input("Shop")
    at.text_input(key=p + "url").input(f"http://127.0.0.1:{closed_port()}/lookup")
    at.button(key=p + "test.run").click().run()
    assert not at.exception, at.exception
    assert any(e.startswith("The test failed (") for e in texts(at.error)), texts(at.error)
    at.text_input(key=p + "url").input(shop_url)
    at.button(key=p + "test.run").click().run()
    assert not any(e.startswith("The test failed (") for e in texts(at.error))
    assert any("Shop answered in" in m for m in texts(at.success))
    assert exchanges_stored(services) == 0


def test_testing_bad_unsaved_settings_shows_the_error_beside_the_field(
        app_as: Callable[..., AppTest], services: Services) -> None:
    at = app_as("admin", page=PAGE)
    p = "integ.new."
    at.text_input(key=p + "name").input("Remote Shop")
    at.text_input(key=p + "url").input("http://adaptor.example.com/lookup")
    at.button(key=p + "test.run").click().run()
    assert not at.exception, at.exception
    url_errors = texts(column_with(at, p + "url").error)
    assert len(url_errors) == 1 and "use https" in url_errors[0]
    assert not any("Exchange (not stored)" in m for m in texts(at.markdown))
    assert exchanges_stored(services) == 0


def test_duplicate_name_is_shown_beside_the_name(app_as: Callable[..., AppTest],
                                                 services: Services, shop_url: str) -> None:
    make_integration(services, "Shop", shop_url)
    at = app_as("admin", page=PAGE)
    at.selectbox(key="integrations.selected").set_value(NEW).run()
    at.text_input(key="integ.new.name").input("SHOP")
    at.text_input(key="integ.new.url").input(shop_url)
    at.button(key="integ.new.save").click().run()
    name_errors = texts(column_with(at, "integ.new.name").error)
    assert len(name_errors) == 1 and "already exists" in name_errors[0]
    assert at.text_input(key="integ.new.name").value == "SHOP"


# -- edit ---------------------------------------------------------------------------------------


def test_admin_edits_settings_and_keeps_or_replaces_secrets(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url, password=PASSWORD,
                            signing_key=SIGNING_KEY,
                            headers=(HeaderSpec("X-Api-Key", HEADER_SECRET, True),))
    at = app_as("admin", page=PAGE)
    p = f"integ.{view.id}."
    assert at.text_input(key=p + "name").value == "Shop"
    at.text_input(key=p + "name").input("Shop EU")
    at.number_input(key=p + "timeout").set_value(3.0)
    at.radio(key=p + "signing_key.action").set_value("Replace").run()
    at.text_input(key=p + "signing_key.value").input("a-new-signing-key")
    at.button(key=p + "save").click().run()
    assert not at.exception, at.exception
    assert "Saved Shop EU." in texts(at.success)
    edited = services.integrations.get(SYSTEM, view.id)
    assert (edited.name, edited.timeout_s) == ("Shop EU", 3.0)
    assert stored_secrets(services, "Shop EU") == {
        "password": PASSWORD, "signing_key": "a-new-signing-key",
        "headers": {"X-Api-Key": HEADER_SECRET}}
    # Remove the password; the header secret stays while its value cell is left empty.
    at.radio(key=p + "password.action").set_value("Remove").run()
    at.button(key=p + "save").click().run()
    assert services.integrations.get(SYSTEM, view.id).password_set is False
    assert stored_secrets(services, "Shop EU")["headers"] == {"X-Api-Key": HEADER_SECRET}


def test_edit_with_a_bad_timeout_free_form_keeps_values(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    at = app_as("admin", page=PAGE)
    p = f"integ.{view.id}."
    at.text_input(key=p + "url").input("ftp://shop.example.com")
    at.text_input(key=p + "realm").input("new realm")
    at.button(key=p + "save").click().run()
    assert any("https://" in e for e in texts(column_with(at, p + "url").error))
    assert at.text_input(key=p + "url").value == "ftp://shop.example.com"
    assert at.text_input(key=p + "realm").value == "new realm"
    assert services.integrations.get(SYSTEM, view.id).url == shop_url


# -- actions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "developer"])
def test_test_connection_shows_the_exchange(app_as: Callable[..., AppTest], services: Services,
                                            shop_url: str, role: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    at = app_as(role, page=PAGE)
    key = f"integ.test.{view.id}"
    person = shop_person("unique")
    at.text_input(key=key + ".email").input(person.email)
    at.button(key=key + ".run").click().run()
    assert not at.exception, at.exception
    assert any("answered in" in s and "1 result(s)" in s for s in texts(at.success))
    assert any(m.startswith("**Exchange ") for m in texts(at.markdown))
    codes = texts(at.code)
    assert any(c.startswith("HTTP 200 · ") for c in codes)         # the viewer's status line
    assert any(f'"{person.email}"' in c for c in codes)            # request body
    assert any(f'"{person.external_id}"' in c for c in codes)      # pretty response body


@pytest.mark.parametrize("action", ["deactivate", "save", "choose another"])
def test_the_test_result_goes_with_the_next_action(
        app_as: Callable[..., AppTest], services: Services, shop_url: str, action: str) -> None:
    """A message belongs to the action that produced it: after Test connection, Deactivate
    (or Save, or choosing another integration) no longer shows the test's answer."""
    view = make_integration(services, "Shop", shop_url)
    other = make_integration(services, "Travel", shop_url)
    at = app_as("admin", page=PAGE)
    at.selectbox(key="integrations.selected").select(view.id).run()
    key = f"integ.test.{view.id}"
    at.text_input(key=key + ".email").input(shop_person("unique").email)
    at.button(key=key + ".run").click().run()
    assert any("Shop answered in" in s for s in texts(at.success))
    if action == "deactivate":
        at.button(key=f"integ.{view.id}.deactivate").click().run()
        at.button(key=f"integ.{view.id}.deactivate.yes").click().run()
        expected = "Deactivated Shop."
    elif action == "save":
        at.text_input(key=f"integ.{view.id}.realm").input("shop-realm")
        at.button(key=f"integ.{view.id}.save").click().run()
        expected = "Saved Shop."
    else:
        at.selectbox(key="integrations.selected").select(other.id).run()
        at.selectbox(key="integrations.selected").select(view.id).run()
        expected = None
    assert not at.exception, at.exception
    assert expected is None or expected in texts(at.success)
    assert not any("answered in" in s for s in texts(at.success)), texts(at.success)
    assert not any(m.startswith("**Exchange ") for m in texts(at.markdown))


def test_failing_integration_shows_last_error_with_its_exchange(
        app_as: Callable[..., AppTest], services: Services) -> None:
    view = make_integration(services, "Dead", "http://127.0.0.1:9/", timeout_s=1.0)
    exchange = services.integrations.test_connection(SYSTEM, view.id)
    assert exchange.error is not None
    at = app_as("admin", page=PAGE)
    rows = table(at, "Name", "Auto-link")
    assert list(rows["Exchange"]) == [exchange.id]
    assert list(rows["Status (24 h)"]) == ["failing"]
    assert str(rows["Last error"].iloc[0]).startswith("unreachable")
    assert any(f"(exchange {exchange.id})" in shown(e.label) for e in at.expander)


def test_deactivate_and_reactivate_with_confirmation(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url, autolink_enabled=True,
                            autolink_fields=("email",))
    person = shop_person("unique")
    created = services.customers.create(SYSTEM, person.name, [person.email])
    assert [r.outcome.value for r in created.autolink] == ["linked"]
    at = app_as("admin", page=PAGE)
    key = f"integ.{view.id}.deactivate"
    at.button(key=key).click().run()
    dialog_text = " ".join(texts(at.markdown))
    assert "pulled data disappears from **1 profile(s)**" in dialog_text
    at.button(key=key + ".no").click().run()  # Cancel changes nothing
    assert services.integrations.get(SYSTEM, view.id).active
    at.button(key=key).click().run()
    at.button(key=key + ".yes").click().run()
    assert not at.exception, at.exception
    assert "Deactivated Shop." in texts(at.success)
    assert not services.integrations.get(SYSTEM, view.id).active
    assert services.customers.get(SYSTEM, created.customer.id).pulled == ()
    key = f"integ.{view.id}.reactivate"
    at.button(key=key).click().run()
    assert "**1 link(s)** come back to life" in " ".join(texts(at.markdown))
    at.button(key=key + ".yes").click().run()
    assert services.integrations.get(SYSTEM, view.id).active


def test_delete_names_the_links_that_go_with_it(app_as: Callable[..., AppTest],
                                                services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url, autolink_enabled=True,
                            autolink_fields=("email",))
    person = shop_person("unique")
    services.customers.create(SYSTEM, person.name, [person.email])
    at = app_as("admin", page=PAGE)
    key = f"integ.{view.id}.delete"
    at.button(key=key).click().run()
    assert "with its **1 link(s)**" in " ".join(texts(at.markdown))
    at.button(key=key + ".yes").click().run()
    assert not at.exception, at.exception
    assert "Deleted Shop and its 1 link(s)." in texts(at.success)
    assert services.integrations.list(SYSTEM) == []
    assert at.selectbox(key="integrations.selected").value == NEW


# -- adaptor protection (rate caps) -------------------------------------------------------------


def test_admin_sets_and_clears_rate_caps_and_everyone_sees_them(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    at = app_as("admin", page=PAGE)
    p = f"integ.{view.id}."
    assert list(table(at, "Name", "Rate cap")["Rate cap"]) == ["no cap"]
    at.number_input(key=p + "max_concurrent").set_value(4)
    at.number_input(key=p + "max_rps").set_value(12.5)
    at.button(key=p + "save").click().run()
    assert not at.exception, at.exception
    assert "Saved Shop." in texts(at.success)
    saved = services.integrations.get(SYSTEM, view.id)
    assert (saved.max_concurrent_requests, saved.max_requests_per_second) == (4, 12.5)
    assert list(table(at, "Name", "Rate cap")["Rate cap"]) == ["4 at once, 12.5 per second"]
    assert at.number_input(key=p + "max_concurrent").value == 4  # the form shows them too
    developer = app_as("developer", page=PAGE)
    settings = table(developer, "setting", "value")
    values = dict(zip(settings["setting"], settings["value"], strict=True))
    assert values["Rate cap"] == "4 at once, 12.5 per second"
    # 0 removes a cap.
    at.number_input(key=p + "max_concurrent").set_value(0)
    at.button(key=p + "save").click().run()
    assert not at.exception, at.exception
    cleared = services.integrations.get(SYSTEM, view.id)
    assert (cleared.max_concurrent_requests, cleared.max_requests_per_second) == (None, 12.5)
    assert list(table(at, "Name", "Rate cap")["Rate cap"]) == ["12.5 per second"]


def test_a_rate_cap_out_of_range_shows_beside_its_field(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    at = app_as("admin", page=PAGE)
    p = f"integ.{view.id}."
    at.number_input(key=p + "max_rps").set_value(0.05)
    at.button(key=p + "save").click().run()
    assert not at.exception, at.exception
    column = next(c for c in at.columns if any(n.key == p + "max_rps" for n in c.number_input))
    assert any("use 0.1 to 10,000 requests per second" in e for e in texts(column.error))
    assert services.integrations.get(SYSTEM, view.id).max_requests_per_second is None
