"""The frame: sign-in (password, OIDC, dev override), sign-out, role-based navigation, and the
shared widgets rendered in a real script run."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from dashboard.widgets import editor_rows
from linker.contract import RequestKind, Severity, Violation
from linker.core.permissions import SYSTEM
from linker.lookup.exchange import (
    ErrorKind,
    ExchangeError,
    RecordedRequest,
    RecordedResponse,
    Trigger,
)
from linker.services.customers import (
    CustomerSummary,
    CustomerView,
    EmailView,
    LinkView,
    PhoneView,
    SuppressionView,
)
from linker.services.facade import Services
from linker.store.exchanges import StoredExchange
from linker.store.models import AuditEvent
from tests.apptest.conftest import ROLES, new_app, table, texts

PASSWORD = "correct horse battery"
PAGES = {"health.py": {"admin", "developer", "agent", "support_lead"},
         "workbench.py": {"admin", "agent", "support_lead"},
         "integrations.py": {"admin", "developer"},
         "autolinking.py": {"admin"},
         "coverage.py": {"admin", "support_lead"},
         "audit.py": {"admin", "support_lead"}}
OIDC_SECRETS = {
    "auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
             "client_id": "linker", "client_secret": "s3cret",
             "server_metadata_url": "https://idp.example/.well-known/openid-configuration"},
    "linker": {"role_claim": "groups",
               "role_map": {"linker-admins": "admin", "linker-agents": "agent"}},
}


def sidebar_text(at: AppTest) -> str:
    return " ".join(texts(at.sidebar.markdown) + texts(at.sidebar.caption))


def sign_in_form(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="sign_in.username").input(username)
    at.text_input(key="sign_in.password").input(password)
    at.button(key="sign_in.submit").click()
    return at.run()


# -- sign-in ------------------------------------------------------------------------------------


def test_signed_out_sees_only_the_sign_in_page(linker_env: object) -> None:
    at = new_app().run()
    assert not at.exception
    assert "Sign in" in texts(at.subheader)
    assert at.text_input(key="sign_in.username") is not None
    assert not at.sidebar.button  # no Sign out
    for page in PAGES:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"../pages/{page}")


def test_password_sign_in_succeeds(services: Services) -> None:
    services.users.create(SYSTEM, "ada", "admin", password=PASSWORD)
    at = sign_in_form(new_app().run(), "Ada", PASSWORD)
    assert not at.exception
    assert at.session_state["auth_username"] == "ada"
    assert at.session_state["auth_role"] == "admin"
    assert "Signed in as **ada**" in sidebar_text(at)
    assert "Role: admin" in sidebar_text(at)
    assert not at.error


def test_sign_in_sets_a_session_cookie_holding_no_password(services: Services) -> None:
    services.users.create(SYSTEM, "ada", "admin", password=PASSWORD)
    at = sign_in_form(new_app().run(), "ada", PASSWORD)
    scripts = [str(h.proto.body) for h in at.get("html")]
    assert len(scripts) == 1 and "linker_session=" in scripts[0]
    token = at.session_state["_app_session_token"]
    assert token in scripts[0] and PASSWORD not in scripts[0]
    assert services.console_sessions.resolve(token) is not None
    at = at.button(key="auth.sign_out").click().run()
    assert services.console_sessions.resolve(token) is None
    assert any("max-age=0" in str(h.proto.body) for h in at.get("html"))


def test_the_cookie_is_written_again_on_later_runs_until_the_browser_sends_it(
        services: Services) -> None:
    # A click right after Sign in can interrupt the run carrying the cookie script before
    # the browser ran it: every later run must carry it again (AppTest sends no cookies,
    # like a tab that has not reloaded since signing in).
    services.users.create(SYSTEM, "ada", "admin", password=PASSWORD)
    at = sign_in_form(new_app().run(), "ada", PASSWORD)
    token = at.session_state["_app_session_token"]
    at.switch_page("../pages/workbench.py").run()
    assert not at.exception
    scripts = [str(h.proto.body) for h in at.get("html")]
    assert [s for s in scripts if f"linker_session={token};" in s] != []


@pytest.mark.parametrize(("username", "password"), [
    ("ada", "wrong password here"),   # right user, wrong password
    ("nobody", PASSWORD),             # unknown user
    ("ada", ""),                      # nothing typed
])
def test_failed_sign_in_does_not_say_which_part_was_wrong(
        services: Services, username: str, password: str) -> None:
    services.users.create(SYSTEM, "ada", "agent", password=PASSWORD)
    at = sign_in_form(new_app().run(), username, password)
    assert not at.exception
    assert texts(at.error) == ["Wrong username or password."]
    assert "auth_username" not in at.session_state
    assert not at.sidebar.button


def test_repeated_wrong_passwords_are_throttled_with_a_clear_message(
        services: Services) -> None:
    services.users.create(SYSTEM, "ada", "agent", password=PASSWORD)
    at = new_app().run()
    for i in range(5):
        at = sign_in_form(at, "ada", f"wrong password number {i}")
        assert texts(at.error) == ["Wrong username or password."]
    at = sign_in_form(at, "ada", PASSWORD)
    assert not at.exception
    # the lock-out is 30 s from the fifth failure; a slow machine may show a second or two less
    [message] = texts(at.error)
    match = re.fullmatch(r"Too many attempts; try again in (\d+) s", message)
    assert match and 25 <= int(match.group(1)) <= 30, message
    assert "auth_username" not in at.session_state


def test_sign_in_and_sign_out_are_audited(services: Services) -> None:
    services.users.create(SYSTEM, "ada", "agent", password=PASSWORD)
    at = sign_in_form(new_app().run(), "ada", PASSWORD)
    at.sidebar.button(key="auth.sign_out").click().run()
    assert not at.exception
    with services.ctx.db.session(readonly=True) as s:
        events = list(s.scalars(select(AuditEvent.action).where(AuditEvent.actor == "ada")
                                .order_by(AuditEvent.id)))
    assert events == ["user.signed_in", "user.signed_out"]


def test_disabled_account_cannot_sign_in(services: Services) -> None:
    services.users.create(SYSTEM, "ada", "admin", password=PASSWORD)
    services.users.create(SYSTEM, "bob", "agent", password=PASSWORD)
    services.users.disable(SYSTEM, "bob")
    at = sign_in_form(new_app().run(), "bob", PASSWORD)
    assert texts(at.error) == ["Wrong username or password."]


def bookmarked(page: str, **query: str) -> AppTest:
    """A signed-out visit to a page's address (``/debugger?exchange=5``): before the first run
    AppTest addresses a page by its file name, which is the page's ``url_path``."""
    at = new_app()
    at.switch_page(f"../pages/{page}")
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_a_bookmarked_page_shows_the_sign_in_form_not_the_page(services: Services) -> None:
    services.users.create(SYSTEM, "ada", "admin", password=PASSWORD)
    at = bookmarked("debugger.py", exchange="5")
    assert not at.exception
    assert "Sign in" in texts(at.subheader)
    assert "Sign in to open Adaptor debugger." in texts(at.caption)
    assert "Adaptor debugger" not in texts(at.title)
    assert not at.sidebar.button


def test_signing_in_at_a_bookmarked_page_opens_it_with_its_query(services: Services) -> None:
    services.users.create(SYSTEM, "ada", "admin", password=PASSWORD)
    at = sign_in_form(bookmarked("debugger.py", exchange="5"), "ada", PASSWORD)
    assert not at.exception, at.exception
    assert "Lookup Adaptor Debugger" in texts(at.title)
    assert at.query_params["exchange"] == "5"
    assert "Signed in as **ada**" in sidebar_text(at)


@pytest.mark.parametrize(("page", "title"), [("integrations.py", "Integrations"),
                                           ("audit.py", "Audit log"),
                                           ("workbench.py", "Link workbench")])
def test_signing_in_at_other_bookmarked_pages_opens_them(services: Services, page: str,
                                                         title: str) -> None:
    services.users.create(SYSTEM, "ada", "admin", password=PASSWORD)
    at = sign_in_form(bookmarked(page), "ada", PASSWORD)
    assert not at.exception, at.exception
    assert texts(at.title) == [title]


def test_a_bookmarked_page_the_role_may_not_open_lands_on_health_and_says_so(
        services: Services) -> None:
    services.users.create(SYSTEM, "ann", "agent", password=PASSWORD)
    at = sign_in_form(bookmarked("debugger.py", exchange="5"), "ann", PASSWORD)
    assert not at.exception, at.exception
    assert "Health" in texts(at.title)
    assert any("may not open Adaptor debugger" in w for w in texts(at.warning))
    # Said once: the stand-in moved the browser to Health, whose next run says nothing.
    # (A plain at.run() would ask for the debugger's address again, as AppTest keeps it.)
    at.switch_page("../pages/health.py").run()
    assert not any("may not open Adaptor debugger" in w for w in texts(at.warning))


def test_sign_out_returns_to_the_sign_in_page(app_as: Callable[..., AppTest]) -> None:
    at = app_as("agent")
    at.switch_page("../pages/workbench.py").run()
    at.sidebar.button(key="auth.sign_out").click().run()
    assert not at.exception
    assert "auth_username" not in at.session_state
    assert "Sign in" in texts(at.subheader)
    with pytest.raises(ValueError):
        at.switch_page("../pages/workbench.py")


# -- password sessions are re-checked against the account on every run ------------------------


def test_disabling_the_account_signs_an_open_session_out(services: Services) -> None:
    services.users.create(SYSTEM, "ada", "admin", password=PASSWORD)
    services.users.create(SYSTEM, "bob", "agent", password=PASSWORD)
    at = sign_in_form(new_app().run(), "bob", PASSWORD)
    assert at.session_state["auth_role"] == "agent"
    at.switch_page("../pages/workbench.py").run()
    assert not at.exception
    services.users.disable(SYSTEM, "bob")
    at.run()
    assert not at.exception
    assert "auth_username" not in at.session_state
    assert texts(at.error) == ["You were signed out: your account bob was disabled or removed. "
                               "Ask an admin to enable it."]
    assert "Sign in" in texts(at.subheader)
    assert not at.sidebar.button
    for page in PAGES:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"../pages/{page}")
    # enabled again: a normal sign-in works, and the notice is gone
    services.users.enable(SYSTEM, "bob")
    at = sign_in_form(at, "bob", PASSWORD)
    assert at.session_state["auth_username"] == "bob"
    assert not at.error


def test_a_role_change_applies_to_an_open_session_on_the_next_run(services: Services) -> None:
    services.users.create(SYSTEM, "ada", "admin", password=PASSWORD)
    services.users.create(SYSTEM, "bob", "agent", password=PASSWORD)
    at = sign_in_form(new_app().run(), "bob", PASSWORD)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/autolinking.py")
    services.users.change_role(SYSTEM, "bob", "admin")
    at.run()
    assert not at.exception
    assert at.session_state["auth_role"] == "admin"
    assert "Role: admin" in sidebar_text(at)
    assert "Your role is now admin (it was agent)." in texts(at.info)
    for page in PAGES:
        at.switch_page(f"../pages/{page}").run()
        assert not at.exception, (page, at.exception)
    # and back down: the admin-only page leaves the navigation at once
    services.users.change_role(SYSTEM, "bob", "agent")
    at.run()
    assert not at.exception
    assert "Role: agent" in sidebar_text(at)
    assert "Health" in texts(at.title)  # the landing page of every role
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("../pages/autolinking.py")


def test_a_dev_session_is_not_looked_up(linker_env: object,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # "dev" is no account: only password sessions are re-checked (the dev override keeps its
    # own rules; sessions seeded by ``app_as`` have no source and are not re-checked either).
    monkeypatch.setenv("LINKER_DEV_ROLE", "agent")
    monkeypatch.setenv("LINKER_ENV", "development")
    at = new_app().run()
    at.run()
    assert not at.exception
    assert at.session_state["auth_username"] == "dev"
    assert "Role: agent" in sidebar_text(at)


# -- navigation -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_exactly_its_pages(app_as: Callable[..., AppTest], role: str) -> None:
    at = app_as(role)
    assert f"Role: {role.replace('_', ' ')}" in sidebar_text(at)
    for page, roles in PAGES.items():
        if role in roles:
            at.switch_page(f"../pages/{page}").run()
            assert not at.exception, (role, page, at.exception)
        else:
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(f"../pages/{page}")


def test_default_page_is_the_first_allowed_one(app_as: Callable[..., AppTest]) -> None:
    # Health is first in PAGES and open to every role: it is everyone's landing page.
    for role in ROLES:
        assert "Health" in texts(app_as(role).title), role


def test_unknown_role_in_the_session_is_signed_out(linker_env: object) -> None:
    at = new_app()
    at.session_state["auth_username"] = "mallory"
    at.session_state["auth_role"] = "superuser"
    at.run()
    assert not at.exception
    assert "Sign in" in texts(at.subheader)


# -- dev override -------------------------------------------------------------------------------


def test_dev_role_signs_in_in_development(linker_env: object,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKER_DEV_ROLE", "developer")
    monkeypatch.setenv("LINKER_ENV", "development")
    at = new_app().run()
    assert not at.exception
    assert at.session_state["auth_role"] == "developer"
    assert "Health" in texts(at.title)
    # Sign out sticks even though the override is still set.
    at.sidebar.button(key="auth.sign_out").click().run()
    assert "Sign in" in texts(at.subheader)


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_dev_role_is_refused_outside_development(linker_env: object, environment: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKER_DEV_ROLE", "admin")
    monkeypatch.setenv("LINKER_ENV", environment)
    at = new_app().run()
    assert not at.exception
    assert "auth_username" not in at.session_state
    assert "Sign in" in texts(at.subheader)
    assert any(f"ignored because LINKER_ENV is '{environment}'" in w for w in texts(at.warning))


# -- OIDC -----------------------------------------------------------------------------------


def oidc_app(user: dict[str, object]) -> AppTest:
    at = new_app()
    for key, value in OIDC_SECRETS.items():
        at.secrets[key] = value
    at.user = user
    return at


def test_oidc_sign_in_button_is_offered_when_auth_is_configured(linker_env: object) -> None:
    at = oidc_app({"is_logged_in": False}).run()
    assert not at.exception
    assert "Sign in with single sign-on" in [b.label for b in at.button]


def test_oidc_user_gets_the_highest_mapped_role(linker_env: object) -> None:
    at = oidc_app({"is_logged_in": True, "email": "Lee@Corp.example",
                   "groups": ["staff", "linker-agents", "linker-admins"]}).run()
    assert not at.exception
    assert "Signed in as **lee@corp.example**" in sidebar_text(at)
    assert "Role: admin" in sidebar_text(at)
    at.switch_page("../pages/autolinking.py").run()
    assert not at.exception


def test_oidc_user_without_a_mapped_group_is_refused(linker_env: object) -> None:
    at = oidc_app({"is_logged_in": True, "email": "guest@corp.example",
                   "groups": "staff, visitors"}).run()
    assert not at.exception
    assert any("has no Linker role" in e and "'groups' claim" in e for e in texts(at.error))
    for page in PAGES:
        with pytest.raises(ValueError):
            at.switch_page(f"../pages/{page}")


# -- shared widgets, rendered in a script run ---------------------------------------------------

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def link(name: str, external_id: str, active: bool = True) -> LinkView:
    return LinkView(1, name, external_id, "auto", "system", NOW, active)


def customer(links: tuple[LinkView, ...] = (),
             suppressions: tuple[SuppressionView, ...] = ()) -> CustomerView:
    return CustomerView(
        id="c-1", name="Ada Lovelace", address="12 Analytical St",
        emails=(EmailView("Ada@Example.com", "ada@example.com", True, ""),
                EmailView("ada@work.example", "ada@work.example", False, "Shop")),
        phones=(PhoneView("+1 415 555 0100", "+14155550100", "MOBILE", ""),),
        custom_attributes={}, links=links, pulled=(), suppressions=suppressions,
        created_at=NOW, updated_at=NOW)


def card_script(value: object, allow: bool) -> None:
    import streamlit as st

    from dashboard.widgets import customer_card

    def allow_again(suppression: object) -> None:
        st.session_state["allowed"] = suppression.integration_name  # type: ignore[attr-defined]

    customer_card(value, key="card", on_allow_autolink=allow_again if allow else None)  # type: ignore[arg-type]


def link_badges(at: AppTest) -> list[str]:
    return [m.help for m in at.markdown if m.value == ":blue-badge[:material/link: linked]"]


def test_customer_card_with_one_link_shows_its_external_id() -> None:
    at = AppTest.from_function(card_script, args=(customer((link("Shop", "shop-9"),)), False))
    at.run()
    assert not at.exception
    assert link_badges(at) == ["Linked to Shop: external id shop-9 (auto)"]
    shown = texts(at.markdown)
    assert "**Ada Lovelace**" in shown
    assert ":material/mail: Ada@Example.com · main" in shown
    assert ":material/mail: ada@work.example (from Shop)" in shown
    assert ":material/call: +14155550100 · MOBILE" in shown
    assert ":material/home: 12 Analytical St" in shown


def test_customer_card_lists_several_systems_and_suppressions() -> None:
    suppression = SuppressionView(3, "Travel", "bob", NOW)
    value = customer((link("Shop", "shop-9"), link("Loyalty", "L-2", active=False)),
                     (suppression,))
    at = AppTest.from_function(card_script, args=(value, True)).run()
    assert link_badges(at) == ["Linked to Shop (shop-9); Loyalty (L-2, inactive)"]
    assert texts(at.info) == ["Auto-linking to Travel is off for this profile: it was unlinked "
                              "by bob on 2026-01-02 03:04:05 UTC."]
    at.button(key="card.allow.3").click().run()
    assert at.session_state["allowed"] == "Travel"


def test_customer_card_without_links_has_no_link_icon() -> None:
    at = AppTest.from_function(card_script, args=(customer(), False)).run()
    assert link_badges(at) == []
    summary = CustomerSummary("c-2", "Bo", "bo@example.com", ("+14155550101",), ("Shop",), NOW)
    at = AppTest.from_function(card_script, args=(summary, False)).run()
    assert link_badges(at) == ["Linked to Shop"]
    assert ":material/mail: bo@example.com  ·  :material/call: +14155550101" in texts(at.caption)


def exchange_script(value: object) -> None:
    from dashboard.widgets import exchange_viewer

    exchange_viewer(value, key="x")  # type: ignore[arg-type]


def stored_exchange(**changes: object) -> StoredExchange:
    base = StoredExchange(
        id=7, integration_id=1, integration_name="Shop", customer_id="c-1", actor="ada",
        kind=RequestKind.SEARCH, trigger=Trigger.TEST, correlation_id="corr-1", started_at=NOW,
        elapsed_ms=123.4,
        request=RecordedRequest("POST", "https://shop.example/lookup",
                                {"Gladly-Authorization": "***"},
                                '{"lookupLevel":"BASIC","query":{"email":"a@b.c"}}'),
        response=RecordedResponse(200, {"content-type": "application/json"},
                                  '{"results":[{"externalCustomerId":1}]}', 38),
        error=ExchangeError(ErrorKind.CONTRACT, "the answer breaks the contract"),
        violations=(Violation("$.results[0].externalCustomerId", "must be a string",
                              Severity.ERROR),),
        result_count=0, body_truncated=True, replay_of=None)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_exchange_viewer_shows_request_response_error_and_violations() -> None:
    at = AppTest.from_function(exchange_script, args=(stored_exchange(),)).run()
    assert not at.exception
    assert any(m.startswith("**Exchange 7** · Shop · search · trigger test")
               for m in texts(at.markdown))
    assert texts(at.caption)[0] == (
        "POST https://shop.example/lookup → HTTP 200 · 38 bytes · 123 ms · 0 result(s) · "
        "correlation id corr-1 · started 2026-01-02 03:04:05 UTC")
    assert texts(at.error) == ["contract: the answer breaks the contract"]
    assert any("cut at the size limit" in w for w in texts(at.warning))
    codes = texts(at.code)
    assert "POST https://shop.example/lookup" in codes
    assert '{\n  "lookupLevel": "BASIC",\n  "query": {\n    "email": "a@b.c"\n  }\n}' in codes
    assert "HTTP 200 · 38 bytes" in codes
    violations = table(at, "path", "severity")
    assert list(violations["path"]) == ["$.results[0].externalCustomerId"]
    assert list(violations["severity"]) == ["error"]
    assert "Gladly-Authorization: ***" in codes
    assert [e.label for e in at.expander] == [
        "Request headers (1)", "Request body", "Response headers (1)", "Response body"]


def test_exchange_viewer_without_a_response() -> None:
    value = stored_exchange(response=None, violations=(), body_truncated=False,
                            error=ExchangeError(ErrorKind.TIMEOUT, "no answer within 5 s"))
    at = AppTest.from_function(exchange_script, args=(value,)).run()
    assert not at.exception
    assert "No response was received." in texts(at.caption)
    assert "→ no answer ·" in texts(at.caption)[0]


def confirm_script(fail: bool) -> None:
    import streamlit as st

    from dashboard.state import show_flashes
    from dashboard.widgets import confirm_button
    from linker.services.errors import Conflict

    def yes() -> None:
        if fail:
            raise Conflict("someone else changed it; reload and try again")
        st.session_state["confirmed"] = st.session_state.get("confirmed", 0) + 1

    show_flashes()
    confirm_button("Delete", key="del", title="Delete it?", message="This removes **3 links**.",
                   confirm_label="Yes, delete", on_confirm=yes)


def test_confirmation_dialog_cancel_and_confirm() -> None:
    at = AppTest.from_function(confirm_script, args=(False,)).run()
    assert "This removes **3 links**." not in texts(at.markdown)
    at.button(key="del").click().run()
    assert "This removes **3 links**." in texts(at.markdown)
    at.button(key="del.no").click().run()
    assert "This removes **3 links**." not in texts(at.markdown)
    assert "confirmed" not in at.session_state
    at.button(key="del").click().run()
    at.button(key="del.yes").click().run()
    assert at.session_state["confirmed"] == 1
    assert "This removes **3 links**." not in texts(at.markdown)


def test_confirmation_dialog_shows_a_service_error() -> None:
    at = AppTest.from_function(confirm_script, args=(True,)).run()
    at.button(key="del").click().run()
    at.button(key="del.yes").click().run()
    assert not at.exception
    assert texts(at.error) == ["Yes, delete failed: someone else changed it; reload and try "
                               "again"]


# -- pure widget helpers ------------------------------------------------------------------------


def test_editor_rows_converts_and_drops_blank_rows() -> None:
    frame = pd.DataFrame([{"name": " X-A ", "value": None, "secret": None},
                          {"name": None, "value": float("nan"), "secret": True},
                          {"name": "X-B", "value": "v", "secret": True}])
    assert editor_rows(frame, {"name": str, "value": str, "secret": bool}) == [
        {"name": "X-A", "value": "", "secret": False},
        {"name": "X-B", "value": "v", "secret": True}]
