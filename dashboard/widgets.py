"""Shared widgets: every page that shows one of these things uses the function here.

- ``customer_card(customer, *, key, on_allow_autolink=None)``: name, contact data, the 🔗 link
  icon whose tooltip lists the linked systems (one system: its external id), suppression notes.
- ``exchange_viewer(exchange, *, key)``: request and response side by side.
- ``status_badge(value)`` / ``badge_label(value)``: health statuses and auto-link outcomes.
- ``autolink_rule_sentence(integration)``: an integration's auto-link rule in one sentence.
- ``confirm_button(label, *, key, title, message, confirm_label, on_confirm)``: a button that
  opens a confirmation dialog (kept open through session state, so it works under AppTest).
- ``show_error(exc)``, ``remember_errors`` / ``field_errors`` / ``field_error``: service errors,
  with ``InvalidInput`` messages shown beside their fields.

Helpers: ``when`` / ``percent`` / ``millis`` (formatting), ``dataframe_of`` (a table with fixed
columns, also when empty), ``editor_rows`` (the rows of an edited ``st.data_editor``), and the
pure ``link_tooltip``, ``pretty_body``, ``headers_rows`` (unit-testable without Streamlit).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import pandas as pd
import streamlit as st

from dashboard.state import flash
from linker.autolink import rule_sentence
from linker.lookup.exchange import Exchange
from linker.services.customers import CustomerSummary, CustomerView, LinkView, SuppressionView
from linker.services.errors import InvalidInput, ServiceError
from linker.services.integrations import IntegrationView
from linker.services.permissions import PermissionDenied
from linker.store.exchanges import StoredExchange

BadgeColor = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray", "primary"]

# -- status badges ------------------------------------------------------------------------------

BADGES: dict[str, tuple[str, BadgeColor]] = {
    # integration health
    "healthy": ("🟢", "green"),
    "degraded": ("🟡", "orange"),
    "failing": ("🔴", "red"),
    "inactive": ("⚪", "gray"),
    # auto-link outcomes
    "linked": ("🟢", "green"),
    "no_match": ("⚪", "gray"),
    "ambiguous": ("🟠", "orange"),
    "no_field_match": ("🟡", "yellow"),
    "conflict": ("🔴", "red"),
    "suppressed": ("🟣", "violet"),
    "skipped": ("⚪", "gray"),
    "error": ("🔴", "red"),
    # exchanges
    "ok": ("🟢", "green"),
    "failed": ("🔴", "red"),
}


def badge_label(value: str) -> str:
    """``value`` with its colour dot, for tables and selectboxes (e.g. ``🟢 healthy``)."""
    dot, _ = BADGES.get(str(value), ("🔵", "blue"))
    return f"{dot} {str(value).replace('_', ' ')}"


def status_badge(value: str, *, help: str | None = None) -> None:
    """A coloured badge for a health status (healthy/degraded/failing/inactive), an auto-link
    outcome (linked, no_match, …) or an exchange result (ok/failed)."""
    _, color = BADGES.get(str(value), ("", "blue"))
    st.badge(str(value).replace("_", " "), color=color, help=help)


# -- formatting -----------------------------------------------------------------------------------


def percent(value: float | None) -> str:
    """``0.953`` → ``95.3 %``; None → ``–``."""
    return "–" if value is None else f"{value * 100:.1f} %"


def millis(value: float | None) -> str:
    """``812.4`` → ``812 ms``; None → ``–``."""
    return "–" if value is None else f"{value:.0f} ms"


def when(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS UTC``; None → ``–``."""
    if value is None:
        return "–"
    return value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo else "")


# -- auto-linking -----------------------------------------------------------------------------

AUTOLINK_FIELD_LABELS = {"email": "Email", "mobile": "Mobile phone"}


def autolink_rule_sentence(view: IntegrationView) -> str:
    """The auto-link rule of one integration in one plain sentence (product.md §2)."""
    return rule_sentence(view.name, active=view.active, enabled=view.autolink_enabled,
                         fields=view.autolink_fields)


# -- customer card --------------------------------------------------------------------------------


def link_tooltip(links: Sequence[LinkView]) -> str | None:
    """The tooltip of the 🔗 icon: the linked systems, or with one system its external id.

    Links to inactive integrations are marked dormant. None when there is no link.
    """
    if not links:
        return None

    def state(link: LinkView) -> str:
        return "" if link.integration_active else ", inactive"

    if len(links) == 1:
        link = links[0]
        return (f"Linked to {link.integration_name}: external id "
                f"{link.external_customer_id} ({link.method}{state(link)})")
    return "Linked to " + "; ".join(
        f"{link.integration_name} ({link.external_customer_id}{state(link)})" for link in links)


def _summary_tooltip(systems: Sequence[str]) -> str | None:
    if not systems:
        return None
    return "Linked to " + ", ".join(systems)


def suppression_note(suppression: SuppressionView) -> str:
    """One sentence saying auto-linking to an integration is off for this profile, and why."""
    return (f"Auto-linking to {suppression.integration_name} is off for this profile: it was "
            f"unlinked by {suppression.created_by} on {when(suppression.created_at)}.")


def customer_card(customer: CustomerView | CustomerSummary, *, key: str,
                  on_allow_autolink: Callable[[SuppressionView], None] | None = None) -> None:
    """A bordered card: name with the 🔗 icon (tooltip: linked systems), emails (main first),
    phones with their type, address, and one note per suppressed integration.

    With ``on_allow_autolink`` each suppression note gets an "Allow auto-linking again" button
    (key ``{key}.allow.{integration_id}``) that calls it with the suppression.
    """
    with st.container(border=True, key=f"{key}.card"):
        if isinstance(customer, CustomerSummary):
            tooltip = _summary_tooltip(customer.linked_systems)
            _card_title(customer.name, tooltip)
            contact = [f"✉️ {customer.main_email}"] if customer.main_email else []
            contact += [f"📞 {phone}" for phone in customer.phones]
            st.caption("  ·  ".join(contact) or "No email or phone")
            st.caption(f"Customer id {customer.id}")
            return
        _card_title(customer.name, link_tooltip(customer.links))
        left, right = st.columns(2)
        with left:
            for email in customer.emails:
                source = f" (from {email.source})" if email.source else ""
                main = " · main" if email.main else ""
                st.markdown(f"✉️ {email.address}{main}{source}")
            if not customer.emails:
                st.caption("No email")
        with right:
            for phone in customer.phones:
                source = f" (from {phone.source})" if phone.source else ""
                st.markdown(f"📞 {phone.e164} · {phone.type}{source}")
            if not customer.phones:
                st.caption("No phone")
        if customer.address:
            st.markdown(f"🏠 {customer.address}")
        st.caption(f"Customer id {customer.id} · created {when(customer.created_at)}")
        for suppression in customer.suppressions:
            note = st.container(horizontal=True, vertical_alignment="center")
            with note:
                st.info(suppression_note(suppression), icon=":material/link_off:")
                if on_allow_autolink is not None and st.button(
                        "Allow auto-linking again",
                        key=f"{key}.allow.{suppression.integration_id}"):
                    on_allow_autolink(suppression)


def _card_title(name: str, tooltip: str | None) -> None:
    title = st.container(horizontal=True, vertical_alignment="center")
    with title:
        st.markdown(f"**{name or '(no name)'}**")
        if tooltip:
            st.badge("🔗", color="blue", help=tooltip)


# -- exchange viewer ------------------------------------------------------------------------------


def pretty_body(body: str | None) -> tuple[str, str]:
    """A body for display and its code language: indented JSON when it parses, else the text
    as it came."""
    if body is None or body == "":
        return "(empty)", "text"
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False), "json"
    except (ValueError, TypeError):
        return body, "text"


def headers_rows(headers: Mapping[str, str]) -> pd.DataFrame:
    """Headers as a two-column table (secrets arrive already masked)."""
    return pd.DataFrame([{"header": k, "value": v} for k, v in headers.items()],
                        columns=["header", "value"])


def exchange_viewer(exchange: StoredExchange | Exchange, *, key: str) -> None:
    """One exchange: a summary line (integration, kind, trigger, status, elapsed ms, error kind,
    correlation id), request and response side by side (method + URL, headers, pretty JSON
    body; status, headers, body, truncated flag), the error, and the contract violations with
    their JSON paths and severity."""
    response = exchange.response
    with st.container(border=True, key=f"{key}.exchange"):
        head = st.container(horizontal=True, vertical_alignment="center")
        with head:
            if isinstance(exchange, StoredExchange):
                number, integration = f"Exchange {exchange.id}", exchange.integration_name
            else:
                number, integration = "Exchange (not stored)", exchange.integration
            st.markdown(f"**{number}** · {integration or '(no integration)'} · "
                        f"{exchange.kind.value} · trigger {exchange.trigger.value}")
            status_badge("ok" if exchange.error is None else "failed")
        stats = st.columns(4)
        stats[0].metric("Status", response.status if response else "no answer")
        stats[1].metric("Elapsed", millis(exchange.elapsed_ms))
        stats[2].metric("Error kind", exchange.error.kind.value if exchange.error else "none")
        results = (exchange.result_count if isinstance(exchange, StoredExchange)
                   else len(exchange.results))
        stats[3].metric("Results", results)
        st.caption(f"Correlation id `{exchange.correlation_id}` · started "
                   f"{when(exchange.started_at)}")
        if exchange.error is not None:
            st.error(f"{exchange.error.kind.value}: {exchange.error.message}")
        truncated = (exchange.body_truncated if isinstance(exchange, StoredExchange)
                     else bool(response and response.truncated))
        if truncated:
            st.warning("A body was cut at the size limit; what is shown is incomplete.")
        left, right = st.columns(2)
        with left:
            st.markdown("**Request**")
            st.code(f"{exchange.request.method} {exchange.request.url}", language="text")
            st.dataframe(headers_rows(exchange.request.headers), hide_index=True,
                         key=f"{key}.request_headers")
            body, language = pretty_body(exchange.request.body)
            st.code(body, language=language)
        with right:
            st.markdown("**Response**")
            if response is None:
                st.caption("No response was received.")
            else:
                size = f" · {response.size} bytes" + (" (truncated)" if response.truncated
                                                      else "")
                st.code(f"HTTP {response.status}{size}", language="text")
                st.dataframe(headers_rows(response.headers), hide_index=True,
                             key=f"{key}.response_headers")
                body, language = pretty_body(response.body)
                st.code(body, language=language)
        if exchange.violations:
            st.markdown(f"**Contract violations ({len(exchange.violations)})**")
            st.dataframe(pd.DataFrame([{"path": v.path, "severity": v.severity.value,
                                        "message": v.message} for v in exchange.violations]),
                         hide_index=True, key=f"{key}.violations")


# -- confirmation dialog --------------------------------------------------------------------------

_OPEN_DIALOG = "_widgets_open_dialog"


def _close_dialog() -> None:
    st.session_state.pop(_OPEN_DIALOG, None)


def confirm_button(label: str, *, key: str, title: str, message: str | Callable[[], str],
                   confirm_label: str, on_confirm: Callable[[], None],
                   disabled: bool = False, help: str | None = None,
                   button_type: Literal["primary", "secondary", "tertiary"] = "secondary"
                   ) -> None:
    """A button (key ``key``) that opens a confirmation dialog saying ``message`` (a callable
    is evaluated when the dialog opens, e.g. to count what a delete removes).

    The dialog's buttons have keys ``{key}.yes`` (labelled ``confirm_label``) and
    ``{key}.no`` (Cancel). Yes calls ``on_confirm`` (which usually writes and then calls
    ``state.done``); a ServiceError it raises is shown as a flash message. The open dialog is
    kept in session state (streamlit-notes §2), so only one is open at a time.
    """
    if st.button(label, key=key, disabled=disabled, help=help, type=button_type):
        st.session_state[_OPEN_DIALOG] = key
    if st.session_state.get(_OPEN_DIALOG) != key:
        return

    @st.dialog(title, on_dismiss=_close_dialog)
    def dialog() -> None:
        st.markdown(message() if callable(message) else message)
        yes, no = st.columns(2)
        if yes.button(confirm_label, key=f"{key}.yes", type="primary"):
            _close_dialog()
            try:
                on_confirm()
            except (ServiceError, PermissionDenied) as exc:
                flash(f"{confirm_label} failed: {exc}", "error")
            st.rerun()
        if no.button("Cancel", key=f"{key}.no"):
            _close_dialog()
            st.rerun()

    dialog()


# -- errors ---------------------------------------------------------------------------------------

_ERRORS = "_widgets_errors"


def show_error(exc: BaseException) -> None:
    """Show a service error: InvalidInput as a summary (the fields show their own message),
    anything else with its message (which says what failed and what to do)."""
    if isinstance(exc, InvalidInput):
        names = ", ".join(exc.fields) or "the form"
        st.error(f"Nothing was saved: check {names} (see the messages beside the fields).")
    elif isinstance(exc, PermissionDenied):
        st.error(f"Not allowed: {exc}")
    else:
        st.error(str(exc))


def remember_errors(form: str, exc: InvalidInput | None) -> None:
    """Keep ``exc.fields`` for ``form`` (None clears), so the next run shows them."""
    errors: dict[str, dict[str, str]] = st.session_state.setdefault(_ERRORS, {})
    if exc is None:
        errors.pop(form, None)
    else:
        errors[form] = dict(exc.fields)


def field_errors(form: str) -> dict[str, str]:
    """The field messages remembered for ``form`` (empty when there are none)."""
    return dict(st.session_state.get(_ERRORS, {}).get(form, {}))


def field_error(errors: Mapping[str, str], *names: str) -> None:
    """Show the message of each of ``names`` in ``errors`` (call right after the field)."""
    for name in names:
        if errors.get(name):
            st.error(errors[name], icon=":material/error:")


def dataframe_of(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with exactly ``columns`` (also when ``rows`` is empty)."""
    return pd.DataFrame(list(rows), columns=list(columns))


def editor_rows(frame: pd.DataFrame, columns: Mapping[str, type]) -> list[dict[str, Any]]:
    """The rows of an edited ``st.data_editor`` table as plain dicts: every column of
    ``columns`` converted to its type (``str`` trimmed, missing → ""; ``bool``, missing →
    False). Rows whose text columns are all empty (a blank added row) are left out."""
    rows: list[dict[str, Any]] = []
    for record in frame.to_dict("records"):
        row: dict[str, Any] = {}
        for name, kind in columns.items():
            value = record.get(name)
            missing = value is None or (not isinstance(value, list | tuple) and pd.isna(value))
            if kind is bool:
                row[name] = False if missing else bool(value)
            else:
                row[name] = "" if missing else str(value).strip()
        if any(row[name] for name, kind in columns.items() if kind is str):
            rows.append(row)
    return rows
