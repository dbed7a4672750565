"""Integrations (admin; developer read-only): the table with 24 h health, the add / edit form
with every setting, Test connection, deactivate / reactivate and delete with confirmations.

Widget keys (for tests): ``integrations.selected`` (0 = new), form fields
``integ.<id|new>.<field>`` (name, url, username, password.value / password.action, realm,
signing_key.value / signing_key.action, headers, query_attrs, result_attrs, autolink_enabled,
autolink_fields, overwrite, timeout, max_concurrent, max_rps, active, save),
``integ.test.<id>.email|phone|run``, the add form's Test connection
``integ.new.test.email|phone|run``,
``integ.<id>.deactivate|reactivate|delete`` (dialog buttons ``….yes`` / ``….no``); the
scheduled probe's ``integ.<id>.probe.*`` (see ``dashboard.probe_form``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from dashboard import state
from dashboard.auth import require
from dashboard.present import badge_label, bold, millis, percent, text, when
from dashboard.probe_form import probe_section
from dashboard.widgets import (
    AUTOLINK_FIELD_LABELS,
    confirm_button,
    editor_rows,
    error,
    exchange_link,
    exchange_viewer,
    field_error,
    field_errors,
    remember_errors,
    show_error,
    status_badge,
    status_cells,
    success,
)
from linker.core.permissions import Actor, Permission
from linker.services.errors import InvalidInput, ServiceError
from linker.services.health import HealthTile, health_status
from linker.services.integrations import (
    DEFAULT_SEARCH_QUERY_ATTRIBUTES,
    DEFAULT_TIMEOUT_S,
    MAX_CONCURRENT_CAP,
    MAX_RATE_CAP,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    AttributeSpec,
    HeaderSpec,
    IntegrationSpec,
    IntegrationView,
    SecretChange,
)

NEW = 0
SELECTED = "integrations.selected"
SELECT_NEXT = "integrations.select_next"
FIELDS = ("name", "url", "username", "password", "realm", "signing_key", "headers",
          "search_query_attributes", "search_results_attributes", "autolink_enabled",
          "autolink_fields", "overwrite_existing", "timeout_s", "active",
          "max_concurrent_requests", "max_requests_per_second")
KEEP, REPLACE, REMOVE = "Keep", "Replace", "Remove"
HEALTH_WINDOW = "24h"
"""The health window of the table's status column (a key of linker.services.health.WINDOWS)."""



# -- the table --------------------------------------------------------------------------------


def integrations_table(views: Sequence[IntegrationView], health: dict[int, HealthTile]) -> None:
    """One row per integration: settings summary and the last 24 h of health (the Health
    page's tiles: a new integration without traffic is "untested")."""
    rows = []
    for view in views:
        report = health.get(view.id)
        last = report.last_error if report else None
        rows.append({
            "Name": view.name,
            "URL": view.url,
            "Active": view.active,
            "Auto-link": ("on: " + ", ".join(AUTOLINK_FIELD_LABELS.get(f, f)
                                             for f in view.autolink_fields)
                          if view.autolink_enabled else "off"),
            "Rate cap": view.rate_caps_text,
            "Status (24 h)": badge_label(tile_status(view, report)),
            "Calls": report.exchanges if report else 0,
            "Success": percent(report.success_rate if report else None),
            "p95": millis(report.p95_ms if report else None),
            "Last error": f"{last.kind}: {last.message}" if last else "",
            "Exchange": last.exchange_id if last else None,
        })
    st.dataframe(status_cells(pd.DataFrame(rows), "Status (24 h)"), hide_index=True,
                 key="integrations.table",
                 column_config={
                     "Active": st.column_config.CheckboxColumn("Active"),
                     "Exchange": st.column_config.NumberColumn(
                         "Exchange", help="Id of the last failed exchange (open it below)",
                         format="%d"),
                 })


def tile_status(view: IntegrationView, tile: HealthTile | None) -> str:
    """The tile's status; an integration saved after the overview was read has no tile yet
    (untested, or inactive)."""
    if tile is not None:
        return tile.status
    return health_status(active=view.active, exchanges=0, success_rate=None, p95_ms=None)


# -- form pieces ------------------------------------------------------------------------------


def secret_input(label: str, key: str, is_set: bool) -> SecretChange:
    """A write-only secret: "set" with Keep / Replace / Remove once saved, never the value."""
    if not is_set:
        value = st.text_input(label, type="password", key=f"{key}.value",
                              help="Write-only: once saved it is never shown again")
        return SecretChange.replace(value)
    action = st.radio(f"{label}: :material/lock: set", [KEEP, REPLACE, REMOVE], horizontal=True,
                      key=f"{key}.action", help="The stored value is never shown")
    if action == REPLACE:
        value = st.text_input(f"New {label.lower()}", type="password", key=f"{key}.value")
        return SecretChange.replace(value)
    return SecretChange.remove() if action == REMOVE else SecretChange.keep()


def attributes_editor(label: str, key: str, rows: Sequence[Any], help: str) -> list[AttributeSpec]:
    """Editable rows of attribute + label."""
    frame = pd.DataFrame([{"attribute": r.attribute, "label": r.label} for r in rows],
                         columns=["attribute", "label"], dtype="object")
    st.markdown(f"**{label}**", help=help)
    edited = st.data_editor(frame, num_rows="dynamic", key=key, hide_index=True,
                            column_config={
                                "attribute": st.column_config.TextColumn("Attribute"),
                                "label": st.column_config.TextColumn("Label"),
                            })
    return [AttributeSpec(r["attribute"], r["label"])
            for r in editor_rows(edited, {"attribute": str, "label": str})]


def headers_editor(key: str, view: IntegrationView | None) -> list[HeaderSpec]:
    """Editable extra headers, each markable secret. A stored secret shows as "set" and
    keeps its value while its value cell is left empty."""
    stored = view.headers if view else ()
    frame = pd.DataFrame([{"name": h.name, "value": "" if h.secret else (h.value or ""),
                           "secret": h.secret, "stored": "set" if h.secret else ""}
                          for h in stored], columns=["name", "value", "secret", "stored"])
    frame = frame.astype({"name": "object", "value": "object", "secret": "bool",
                          "stored": "object"})
    st.markdown("**Extra HTTP headers**", help="Sent with every request. Mark a header secret "
                "to store its value encrypted and mask it in exchanges; leave a stored "
                "secret's value empty to keep it.")
    edited = st.data_editor(frame, num_rows="dynamic", key=key, hide_index=True,
                            column_config={
                                "name": st.column_config.TextColumn("Header"),
                                "value": st.column_config.TextColumn("Value"),
                                "secret": st.column_config.CheckboxColumn("Secret",
                                                                          default=False),
                                "stored": st.column_config.TextColumn("Stored",
                                                                      disabled=True),
                            })
    specs = []
    for row in editor_rows(edited, {"name": str, "value": str, "secret": bool}):
        value: str | None = row["value"]
        if row["secret"] and not value:
            value = None  # keep the stored secret (or: "give a value" when there is none)
        specs.append(HeaderSpec(row["name"], value, row["secret"]))
    return specs


def rate_cap_inputs(prefix: str, values: dict[str, Any],
                    slot: Callable[[str], None]) -> tuple[int, float]:
    """The two adaptor-protection caps (0 = no cap), honoured by every worker together, first
    filled from ``values`` (see ``prefill``); ``slot(field)`` places each field's error under
    it."""
    st.markdown("**Adaptor protection**", help="Caps on the requests sent to this adaptor, "
                "all of Linker's processes together (backfills, workers, the console); "
                "requests over a cap wait their turn. 0 means no cap.")
    left, right = st.columns(2)
    with left:
        concurrent = st.number_input(
            "Max concurrent requests", min_value=0, max_value=MAX_CONCURRENT_CAP, step=1,
            value=values["max_concurrent"],
            key=prefix + "max_concurrent", help="Requests in flight at once; 0 = no cap")
        slot("max_concurrent_requests")
    with right:
        per_second = st.number_input(
            "Max requests per second", min_value=0.0, max_value=MAX_RATE_CAP, step=1.0,
            value=values["max_rps"],
            key=prefix + "max_rps", help="Requests started per second, evenly spaced; "
            "0 = no cap")
        slot("max_requests_per_second")
    return int(concurrent), float(per_second)


def prefill(view: IntegrationView | None) -> dict[str, Any]:
    """The form's first values (widget key suffix → value): ``view``'s settings, or the add
    form's defaults. Secrets start at Keep, their new value empty."""
    if view is None:
        return {"name": "", "url": "", "username": "", "realm": "", "autolink_enabled": False,
                "autolink_fields": [], "overwrite": False, "timeout": float(DEFAULT_TIMEOUT_S),
                "max_concurrent": 0, "max_rps": 0.0}
    return {"name": view.name, "url": view.url, "username": view.username,
            "realm": view.realm, "autolink_enabled": view.autolink_enabled,
            "autolink_fields": list(view.autolink_fields),
            "overwrite": view.overwrite_existing, "timeout": float(view.timeout_s),
            "max_concurrent": int(view.max_concurrent_requests or 0),
            "max_rps": float(view.max_requests_per_second or 0.0),
            "password.action": KEEP, "password.value": "",
            "signing_key.action": KEEP, "signing_key.value": ""}


def refill_when_changed(prefix: str, view: IntegrationView) -> None:
    """When ``view`` was saved elsewhere (another tab, another admin, the Auto-linking page)
    since its form was filled, fill the form again from the stored settings (unsaved edits
    of it are dropped, with a note) instead of keeping the old values (which Save would
    write back over the change)."""
    values = {prefix + field: value for field, value in prefill(view).items()}
    if state.refill_widgets(prefix + "filled", view.updated_at, values):
        st.info(f"{text(view.name)} was changed elsewhere since this form was filled: it shows "
                "the stored settings again.")


def integration_form(actor: Actor, view: IntegrationView | None) -> None:
    """The add form (``view`` None) or the edit form, with errors beside their fields."""
    prefix = f"integ.{view.id if view else 'new'}."
    form = prefix + "form"
    values = prefill(view)
    slots: dict[str, DeltaGenerator] = {}

    def slot(name: str) -> None:
        slots[name] = st.empty()

    with st.container(border=True, key=prefix + "container"):
        st.subheader(f"Edit {text(view.name)}" if view else "Add an integration")
        if view is not None:
            refill_when_changed(prefix, view)
        left, right = st.columns(2)
        with left:
            name = st.text_input("Name", value=values["name"], key=prefix + "name",
                                 help="Unique, compared ignoring case")
            slot("name")
        with right:
            url = st.text_input("Adaptor URL", value=values["url"],
                                key=prefix + "url", placeholder="https://adaptor.example.com/",
                                help="https; plain http only for localhost / 127.0.0.1 / ::1")
            slot("url")
        st.markdown("**Authentication**")
        a, b, c = st.columns(3)
        with a:
            username = st.text_input("Basic auth username", key=prefix + "username",
                                     value=values["username"])
            slot("username")
        with b:
            password = secret_input("Basic auth password", prefix + "password",
                                    bool(view and view.password_set))
            slot("password")
        with c:
            realm = st.text_input("Realm", value=values["realm"],
                                  key=prefix + "realm")
            slot("realm")
        signing_key = secret_input("Signing key", prefix + "signing_key",
                                   bool(view and view.signing_key_set))
        slot("signing_key")
        headers = headers_editor(prefix + "headers", view)
        slot("headers")
        q, r = st.columns(2)
        with q:
            query_attributes = attributes_editor(
                "Search query attributes", prefix + "query_attrs",
                view.search_query_attributes if view else DEFAULT_SEARCH_QUERY_ATTRIBUTES,
                "Each becomes a search field for agents and the key sent in a Basic search, "
                "e.g. email / Email, orderNumber / Order Number")
            slot("search_query_attributes")
        with r:
            result_attributes = attributes_editor(
                "Search results attributes", prefix + "result_attrs",
                view.search_results_attributes if view else (),
                "The columns of the search results table, e.g. name / Name")
            slot("search_results_attributes")
        st.markdown("**Auto-linking and data**")
        x, y, z = st.columns(3)
        with x:
            autolink_enabled = st.toggle("Auto-linking", key=prefix + "autolink_enabled",
                                         value=values["autolink_enabled"])
            slot("autolink_enabled")
            autolink_fields = st.multiselect(
                "Auto-linking fields", list(AUTOLINK_FIELD_LABELS),
                default=values["autolink_fields"],
                format_func=lambda f: AUTOLINK_FIELD_LABELS[f], key=prefix + "autolink_fields")
            slot("autolink_fields")
        with y:
            overwrite = st.toggle("Overwrite existing values", key=prefix + "overwrite",
                                  value=values["overwrite"],
                                  help="Pulled name and address replace the profile's own "
                                  "(otherwise only blank values are filled)")
            slot("overwrite_existing")
            active = True
            if view is None:
                active = st.toggle("Active", value=True, key=prefix + "active")
                slot("active")
        with z:
            timeout = st.number_input("Timeout (seconds)", min_value=MIN_TIMEOUT_S,
                                      max_value=MAX_TIMEOUT_S, step=0.5,
                                      value=values["timeout"],
                                      key=prefix + "timeout")
            slot("timeout_s")
        max_concurrent, max_rps = rate_cap_inputs(prefix, values, slot)
        general = st.empty()
        trial = None
        if view is None and actor.can(Permission.TEST_INTEGRATIONS):
            trial = unsaved_test_fields(prefix)
        buttons = st.container(horizontal=True)
        with buttons:
            save = st.button("Save changes" if view else "Add integration", type="primary",
                             key=prefix + "save")
            test = trial is not None and st.button(
                "Test connection", key=prefix + "test.run", icon=":material/network_check:",
                help="Sends one Basic search with these settings, before saving; nothing is "
                "stored")
        spec = IntegrationSpec(
            name=name, url=url, username=username, password=password, realm=realm,
            signing_key=signing_key, headers=tuple(headers),
            search_query_attributes=tuple(query_attributes),
            search_results_attributes=tuple(result_attributes),
            autolink_enabled=autolink_enabled, autolink_fields=tuple(autolink_fields),
            overwrite_existing=overwrite, timeout_s=float(timeout),
            active=active if view is None else view.active,
            max_concurrent_requests=max_concurrent, max_requests_per_second=max_rps)
        if test and trial is not None:
            run_unsaved_test(actor, spec, trial, form=form, general=general,
                             result_key=prefix + "test.result")
        unsaved_test_result(prefix + "test.result", name)

    if save:
        svc = state.services()
        try:
            if view is None:
                created = svc.integrations.create(actor, spec)
                message = f"Added {created.name}."
                st.session_state[SELECT_NEXT] = created.id
            else:
                updated = svc.integrations.update(actor, view.id, spec)
                message = (f"Saved {updated.name}." if updated.updated_at != view.updated_at
                           else "Nothing changed.")
        except InvalidInput as exc:
            remember_errors(form, exc)
        except ServiceError as exc:
            remember_errors(form, None)
            with general.container():
                show_error(exc)
        else:
            remember_errors(form, None)
            state.reset_widgets(prefix)
            forget_test_results()
            state.done(message)
    errors = field_errors(form)
    for field in errors:
        target = slots.get(field)
        if target is not None:
            with target.container():
                field_error(errors, field)
    unplaced = {f: m for f, m in errors.items() if f not in slots}
    if unplaced:
        with general.container():
            show_error(InvalidInput(errors))
            for field, message in unplaced.items():
                st.error(f"{field.replace('_', ' ')}: {message}")
    elif errors:
        with general.container():
            show_error(InvalidInput(errors))


def unsaved_test_fields(prefix: str) -> tuple[str, str]:
    """The test email and phone of Test connection on the add form."""
    st.markdown("**Test before saving**", help="Test connection sends one Basic search with "
                "the settings above (the test email and/or phone, else a test email) and shows "
                "the request and the answer; nothing is stored until you add the integration.")
    a, b = st.columns(2)
    email = a.text_input("Test email", key=prefix + "test.email",
                         placeholder="linker.connection.test@example.com")
    phone = b.text_input("Test phone", key=prefix + "test.phone", placeholder="+14155550100")
    return email, phone


def run_unsaved_test(actor: Actor, spec: IntegrationSpec, trial: tuple[str, str], *,
                     form: str, general: DeltaGenerator, result_key: str) -> None:
    """Send the add form's test; bad settings show beside their fields, as on save."""
    email, phone = trial
    try:
        exchange = state.services().integrations.test_unsaved(
            actor, spec, email=email or None, phone=phone or None)
    except InvalidInput as exc:
        st.session_state.pop(result_key, None)
        remember_errors(form, exc)
    except ServiceError as exc:
        st.session_state.pop(result_key, None)
        remember_errors(form, None)
        with general.container():
            show_error(exc)
    else:
        remember_errors(form, None)
        st.session_state[result_key] = exchange


def unsaved_test_result(result_key: str, name: str) -> None:
    """The last test of the add form: a one-line verdict and the (unstored) exchange."""
    result = st.session_state.get(result_key)
    if result is None:
        return
    shown = name.strip() or "The adaptor"
    if result.ok:
        success(f"{shown} answered in {millis(result.elapsed_ms)} with {len(result.results)} "
                "result(s). Nothing is saved yet: add the integration to keep it.")
    else:
        error(f"The test failed ({result.error.kind.value}); see the exchange. Nothing was "
              "saved.")
    exchange_viewer(result, key=result_key + ".exchange")


def readonly_settings(view: IntegrationView) -> None:
    """Every setting of ``view`` without edit controls (secrets only as set / not set)."""
    with st.container(border=True, key=f"integ.{view.id}.readonly"):
        st.subheader(text(view.name))
        st.caption("Read-only: ask an admin to change these settings.")
        secret = {True: "set (hidden)", False: "not set"}
        fields = {
            "Adaptor URL": view.url, "Basic auth username": view.username or "–",
            "Basic auth password": secret[view.password_set], "Realm": view.realm or "–",
            "Signing key": secret[view.signing_key_set],
            "Auto-linking": "on" if view.autolink_enabled else "off",
            "Auto-linking fields": ", ".join(AUTOLINK_FIELD_LABELS.get(f, f)
                                             for f in view.autolink_fields) or "–",
            "Overwrite existing values": "on" if view.overwrite_existing else "off",
            "Timeout": f"{view.timeout_s:g} s", "Rate cap": view.rate_caps_text,
            "Active": "yes" if view.active else "no",
            "Updated": when(view.updated_at),
        }
        st.dataframe(pd.DataFrame({"setting": list(fields), "value": list(fields.values())}),
                     hide_index=True, key=f"integ.{view.id}.settings")
        st.markdown("**Extra HTTP headers**")
        st.dataframe(pd.DataFrame([{"header": h.name,
                                    "value": "secret (hidden)" if h.secret else h.value}
                                   for h in view.headers], columns=["header", "value"]),
                     hide_index=True, key=f"integ.{view.id}.headers_ro")
        q, r = st.columns(2)
        for column, title, rows in ((q, "Search query attributes", view.search_query_attributes),
                                    (r, "Search results attributes",
                                     view.search_results_attributes)):
            with column:
                st.markdown(f"**{title}**")
                st.dataframe(pd.DataFrame([{"attribute": a.attribute, "label": a.label}
                                           for a in rows], columns=["attribute", "label"]),
                             hide_index=True)


# -- actions ----------------------------------------------------------------------------------


TEST_PREFIX = "integ.test."
RESULT_SUFFIX = ".result"


def forget_test_results() -> None:
    """Drop the shown Test connection answers: a message belongs to the action that produced
    it, so the next action (deactivate, save, another integration, ...) takes it away."""
    for key in [k for k in st.session_state
                if str(k).startswith(TEST_PREFIX) and str(k).endswith(RESULT_SUFFIX)]:
        del st.session_state[key]


def test_connection(actor: Actor, view: IntegrationView) -> None:
    """One probe search with a test email / phone; the exchange in the exchange viewer."""
    key = f"{TEST_PREFIX}{view.id}"
    with st.expander("Test connection", expanded=True, key=key + ".expander"):
        st.caption("Sends one Basic search to the adaptor (also when the integration is "
                   "inactive) and shows the request and the answer.")
        a, b = st.columns(2)
        email = a.text_input("Test email", key=key + ".email",
                             placeholder="linker.connection.test@example.com")
        phone = b.text_input("Test phone", key=key + ".phone", placeholder="+14155550100")
        if st.button("Test connection", key=key + ".run", icon=":material/network_check:"):
            try:
                exchange = state.services().integrations.test_connection(
                    actor, view.id, email=email or None, phone=phone or None)
            except ServiceError as exc:
                show_error(exc)
            else:
                state.changed()
                st.session_state[key + RESULT_SUFFIX] = exchange
        result = st.session_state.get(key + RESULT_SUFFIX)
        if result is not None:
            if result.ok:
                success(f"{view.name} answered in {millis(result.elapsed_ms)} with "
                        f"{result.result_count} result(s).")
            else:
                error(f"The test failed ({result.error.kind.value}); see the exchange.")
            exchange_viewer(result, key=key + ".exchange")


def last_error(actor: Actor, view: IntegrationView, report: HealthTile | None) -> None:
    """The last failed exchange of the last 24 h, openable in the exchange viewer."""
    if report is None or report.last_error is None:
        return
    last = report.last_error
    label = f"Last error: {last.kind} at {when(last.at)} (exchange {last.exchange_id})"
    with st.expander(text(label), key=f"integ.{view.id}.last_error"):
        error(last.message or last.kind)
        exchange_link(actor, last.exchange_id)
        if actor.can(Permission.VIEW_EXCHANGES):
            try:
                exchange = state.exchange(actor, last.exchange_id)
            except ServiceError as exc:
                show_error(exc)
            else:
                exchange_viewer(exchange, key=f"integ.{view.id}.last_exchange")


def status_actions(actor: Actor, view: IntegrationView) -> None:
    """Deactivate / reactivate and delete, each behind a confirmation naming the impact."""
    svc = state.services()
    key = f"integ.{view.id}"

    def impact_text(verb: str) -> str:
        impact = svc.integrations.impact(actor, view.id)
        if verb == "deactivate":
            return (f"Deactivating {bold(view.name)} stops every lookup to it, and its pulled "
                    f"data disappears from **{impact.profiles_with_data} profile(s)**. Its "
                    f"{impact.links} link(s) are kept and come back to life, with a refresh, "
                    "when you reactivate it.")
        if verb == "reactivate":
            return (f"Reactivating {bold(view.name)} turns lookups back on. Its "
                    f"**{impact.links} link(s)** come back to life; each profile is refreshed "
                    "when it is next opened.")
        return (f"Deleting {bold(view.name)} removes it with its **{impact.links} link(s)**, the "
                f"pulled data of {impact.profiles_with_data} profile(s), "
                f"{impact.suppressions} suppression(s) and {impact.outcomes} auto-link "
                "outcome(s). Its exchanges stay in the log. This cannot be undone.")

    def deactivate() -> None:
        svc.integrations.deactivate(actor, view.id)
        after_own_write()
        state.done(f"Deactivated {view.name}.")

    def reactivate() -> None:
        svc.integrations.activate(actor, view.id)
        after_own_write()
        state.done(f"Reactivated {view.name}.")

    def after_own_write() -> None:
        forget_test_results()
        st.session_state.pop(f"{key}.filled", None)  # this page's change: no refill, no note

    def delete() -> None:
        removed = svc.integrations.delete(actor, view.id)
        forget_test_results()
        st.session_state.pop(SELECTED, None)
        state.done(f"Deleted {view.name} and its {removed.links} link(s).")

    row = st.container(horizontal=True)
    with row:
        if view.active:
            confirm_button("Deactivate", key=f"{key}.deactivate",
                           title=f"Deactivate {text(view.name)}?",
                           message=lambda: impact_text("deactivate"),
                           confirm_label="Yes, deactivate", on_confirm=deactivate,
                           help="Stop lookups and remove pulled data; links are kept")
        else:
            confirm_button("Reactivate", key=f"{key}.reactivate",
                           title=f"Reactivate {text(view.name)}?",
                           message=lambda: impact_text("reactivate"),
                           confirm_label="Yes, reactivate", on_confirm=reactivate)
        confirm_button("Delete", key=f"{key}.delete", title=f"Delete {text(view.name)}?",
                       message=lambda: impact_text("delete"), confirm_label="Yes, delete",
                       on_confirm=delete, help="Remove it and every link to it")


# -- the page ---------------------------------------------------------------------------------


def main() -> None:
    """The page: the table, then the chosen integration (or the add form)."""
    actor = require(Permission.VIEW_INTEGRATIONS, page="integrations")
    can_edit = actor.can(Permission.MANAGE_INTEGRATIONS)
    st.title("Integrations")
    st.caption("The external systems Linker links profiles to, each behind one lookup adaptor.")

    views = state.integration_list(actor)
    health = {t.integration_id: t for t in state.health_overview(actor, HEALTH_WINDOW).tiles}
    if views:
        integrations_table(views, health)
    else:
        st.info("No integration yet." + (" Add one below." if can_edit else ""))

    by_id = {v.id: v for v in views}
    selected = choose_integration(by_id, can_edit)
    if selected == NEW:
        integration_form(actor, None)
    elif selected is not None:
        integration_detail(actor, by_id[selected], health.get(selected))


def choose_integration(by_id: dict[int, IntegrationView], can_edit: bool) -> int | None:
    """The integration picker and the "Add an integration" button; the chosen id, NEW for
    the add form, or None when there is nothing to show."""
    options = list(by_id) + ([NEW] if can_edit else [])
    pending = st.session_state.pop(SELECT_NEXT, None)
    if pending in options:
        st.session_state[SELECTED] = pending
    if not by_id and can_edit:
        st.session_state[SELECTED] = NEW  # nothing to pick yet: the add form
    if st.session_state.get(SELECTED) not in options:
        st.session_state.pop(SELECTED, None)
    if not options:
        return None
    picker, add = st.columns([4, 1], vertical_alignment="bottom")
    with picker:
        selected: int | None = st.selectbox(
            "Integration", options, key=SELECTED, on_change=forget_test_results,
            format_func=lambda i: "New integration" if i == NEW else (
                f"{by_id[i].name}" + ("" if by_id[i].active else " (inactive)")))
    if can_edit and add.button("Add an integration", key="integrations.add",
                               icon=":material/add:", disabled=selected == NEW):
        st.session_state[SELECT_NEXT] = NEW
        st.rerun()
    return selected


def integration_detail(actor: Actor, view: IntegrationView,
                       report: HealthTile | None) -> None:
    """One integration: its name and status, last error, Test connection, the status actions
    and the edit form (read-only settings for roles that may not edit)."""
    header = st.container(horizontal=True, vertical_alignment="center")
    with header:
        st.markdown(f"### {text(view.name)}")
        status_badge(tile_status(view, report))
    last_error(actor, view, report)
    if actor.can(Permission.TEST_INTEGRATIONS):
        test_connection(actor, view)
    probe_section(actor, view)
    if actor.can(Permission.MANAGE_INTEGRATIONS):
        status_actions(actor, view)
        integration_form(actor, view)
    else:
        readonly_settings(view)


if __name__ == "__main__":
    main()
