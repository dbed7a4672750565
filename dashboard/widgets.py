"""Shared widgets: every page that shows one of these things uses the function here.

- ``customer_card(customer, *, key, on_allow_autolink=None)``: name, contact data, the link
  icon whose tooltip lists the linked systems (one system: its external id), suppression notes.
- ``exchange_viewer(exchange, *, key, expanded=False)``: a one-line summary, then request and
  response side by side with headers and bodies in collapsible, wrapped, copyable blocks.
- ``status_badge(value)`` / ``badge_label(value)``: health statuses and auto-link outcomes.
- ``autolink_rule_sentence(integration)``: an integration's auto-link rule in one sentence.
- ``confirm_button(label, *, key, title, message, confirm_label, on_confirm)``: a button that
  opens a confirmation dialog (kept open through session state, so it works under AppTest).
- ``transaction_cards(key, transactions)``, ``custom_attributes_table(key, attributes)``:
  pulled data; ``autolink_table(results, key=…)``: one row per auto-link attempt.
- ``show_error(exc)``, ``remember_errors`` / ``field_errors`` / ``field_error``: service errors,
  with ``InvalidInput`` messages shown beside their fields.

Helpers: ``dataframe_of`` (a table with fixed columns, also when empty), ``editor_rows`` (the
rows of an edited ``st.data_editor``). Pure formatting lives in ``dashboard.present``; every
adaptor-controlled string passes through ``present.text`` before a Markdown-rendering element.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import pandas as pd
import streamlit as st

from dashboard import present
from dashboard.state import flash
from linker.core.autolink import AutolinkField, rule_sentence
from linker.core.permissions import Actor, Permission
from linker.lookup.exchange import Exchange
from linker.services.autolinking import AutolinkResult
from linker.services.customers import CustomerSummary, CustomerView, SuppressionView
from linker.services.errors import InvalidInput, PermissionDenied, ServiceError
from linker.services.integrations import IntegrationView
from linker.store.exchanges import StoredExchange

BadgeColor = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray", "primary"]


def caption(message: object) -> None:
    """``st.caption`` of plain text: nothing in ``message`` is read as Markdown or HTML."""
    st.caption(present.text(message))


def info(message: object, *, icon: str | None = None) -> None:
    """``st.info`` of plain text (see ``caption``)."""
    st.info(present.text(message), icon=icon)


def success(message: object, *, icon: str | None = None) -> None:
    """``st.success`` of plain text (see ``caption``)."""
    st.success(present.text(message), icon=icon)


def warning(message: object, *, icon: str | None = None) -> None:
    """``st.warning`` of plain text (see ``caption``)."""
    st.warning(present.text(message), icon=icon)


def error(message: object, *, icon: str | None = None) -> None:
    """``st.error`` of plain text (see ``caption``)."""
    st.error(present.text(message), icon=icon)


FILTER_WIDTH = 220
"""Pixels of each control in a ``filter_bar``: equal widths, wrapping onto a new line only
when the page is too narrow."""


def filter_bar(key: str) -> Any:
    """The one row of filters a list page shows above its table (Audit log, Coverage
    worklists, auto-link outcomes): a horizontal container; give each control
    ``width=FILTER_WIDTH``."""
    return st.container(horizontal=True, vertical_alignment="bottom", key=key, gap="small")


def status_badge(value: str, *, help: str | None = None) -> None:
    """A coloured badge for a health status (healthy/degraded/failing/inactive), an auto-link
    outcome (linked, no_match, …), an exchange result (ok/failed) or a check (pass/warn/fail)."""
    color = cast(BadgeColor, present.badge_color(value))
    st.badge(str(value).replace("_", " "), color=color, help=help)


# -- auto-linking -----------------------------------------------------------------------------

AUTOLINK_FIELD_LABELS = {field.value: field.label for field in AutolinkField}
"""Stored auto-linking field → its label, in form order (from ``AutolinkField``)."""


def autolink_rule_sentence(view: IntegrationView) -> str:
    """The auto-link rule of one integration in one plain sentence (product.md §2)."""
    return rule_sentence(view.name, active=view.active, enabled=view.autolink_enabled,
                         fields=view.autolink_fields)


# -- customer card ---------------------------------------------------------------------------

MAIL, PHONE, HOME, LINK = ":material/mail:", ":material/call:", ":material/home:", ":material/link:"
"""Material icons (a font Streamlit ships), not emoji: they render without emoji fonts."""


def customer_card(customer: CustomerView | CustomerSummary, *, key: str,
                  on_allow_autolink: Callable[[SuppressionView], None] | None = None) -> None:
    """A bordered card: name with the link icon (tooltip: linked systems), emails (main first),
    phones with their type, address, and one note per suppressed integration.

    With ``on_allow_autolink`` each suppression note gets an "Allow auto-linking again" button
    (key ``{key}.allow.{integration_id}``) whose click calls it with the suppression, as the
    button's callback (before the run that follows the click: it draws nothing itself).
    """
    with st.container(border=True, key=f"{key}.card"):
        if isinstance(customer, CustomerSummary):
            tooltip = present.systems_tooltip(customer.linked_systems)
            _card_title(customer.name, tooltip)
            contact = ([f"{MAIL} {present.text(customer.main_email)}"] if customer.main_email
                       else [])
            contact += [f"{PHONE} {present.text(phone)}" for phone in customer.phones]
            st.caption("  ·  ".join(contact) or "No email or phone")
            caption(f"Customer id {customer.id}")
            return
        _card_title(customer.name, present.link_tooltip(customer.links))
        left, right = st.columns(2)
        with left:
            for email in customer.emails:
                source = f" (from {present.text(email.source)})" if email.source else ""
                main = " · main" if email.main else ""
                st.markdown(f"{MAIL} {present.text(email.address)}{main}{source}")
            if not customer.emails:
                st.caption("No email")
        with right:
            for phone in customer.phones:
                source = f" (from {present.text(phone.source)})" if phone.source else ""
                st.markdown(f"{PHONE} {present.text(phone.e164)} · {present.text(phone.type)}"
                            f"{source}")
            if not customer.phones:
                st.caption("No phone")
        if customer.address:
            st.markdown(f"{HOME} {present.text(customer.address)}")
        caption(f"Customer id {customer.id} · created {present.when(customer.created_at)}")
        for suppression in customer.suppressions:
            note = st.container(horizontal=True, vertical_alignment="center")
            with note:
                info(present.suppression_note(suppression), icon=":material/link_off:")
                if on_allow_autolink is not None:
                    st.button("Allow auto-linking again",
                              key=f"{key}.allow.{suppression.integration_id}",
                              on_click=on_allow_autolink, args=(suppression,))


def _card_title(name: str, tooltip: str | None) -> None:
    title = st.container(horizontal=True, vertical_alignment="center")
    with title:
        st.markdown(present.bold(name or "(no name)"))
        if tooltip:
            st.badge("linked", icon=LINK, color="blue", help=tooltip)


# -- pulled data ------------------------------------------------------------------------------


def transaction_card(key: str, t: Mapping[str, Any]) -> None:
    """One transaction: headline, the other flat values, and nested lists as tables."""
    title, used = present.transaction_title(t)
    with st.container(border=True, key=key):
        st.markdown(title)
        details = present.transaction_details(t, used)
        if details:
            st.caption(details)
        for k, v in t.items():
            if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                caption(k)
                st.dataframe(pd.DataFrame([{c: present.value_text(x) for c, x in row.items()}
                                           for row in v]),
                             hide_index=True, key=f"{key}.{k}")
            elif isinstance(v, dict | list) and v:
                caption(f"{k}: {present.value_text(v)}")


def transaction_cards(key: str, transactions: Sequence[Mapping[str, Any]]) -> None:
    """Cards grouped by type, each group labelled with its count ("3 Orders"); group
    ``{key}.<TYPE>``, card ``{key}.<index>``."""
    for kind, items in present.group_transactions(transactions).items():
        with st.expander(present.text(present.transaction_group_label(kind, len(items))),
                         expanded=len(items) <= 3, key=f"{key}.{kind}"):
            for index, t in items:
                transaction_card(f"{key}.{index}", t)


def custom_attributes_table(key: str, attributes: Mapping[str, Any]) -> None:
    """Pulled custom attributes as an Attribute / Value table."""
    rows = [{"Attribute": k, "Value": present.value_text(v)} for k, v in attributes.items()]
    st.dataframe(dataframe_of(rows, ["Attribute", "Value"]), hide_index=True, key=key)


def autolink_table(results: Sequence[AutolinkResult], *, key: str) -> None:
    """One row per auto-link attempt: integration, outcome, what it means, the exchange."""
    rows = [{"Integration": r.integration_name, "Outcome": present.badge_label(r.outcome.value),
             "What happened": r.reason + (f" (the refresh after it failed: {r.refresh_error})"
                                          if r.refresh_error else ""),
             "Exchange": r.exchange_id} for r in results]
    st.dataframe(status_cells(dataframe_of(rows, ["Integration", "Outcome", "What happened",
                                                  "Exchange"]), "Outcome"),
                 hide_index=True, key=key)


# -- exchange links ----------------------------------------------------------------------------

DEBUGGER_PAGE = Path(__file__).resolve().parents[1] / "pages" / "debugger.py"


def exchange_link(actor: Actor, exchange_id: int) -> None:
    """A link that opens exchange ``exchange_id`` in the debugger's exchange log, for roles
    that may read it; for the others, whom to ask."""
    if actor.can(Permission.READ_EXCHANGE_LOG):
        st.page_link(str(DEBUGGER_PAGE), label=f"Open exchange {exchange_id} in the exchange log",
                     icon=":material/open_in_new:", query_params={"exchange": str(exchange_id)})
    else:
        caption(f"Exchange {exchange_id} holds the raw request and answer: ask an admin or a "
                "developer to open it in the Adaptor debugger.")


# -- exchange viewer ------------------------------------------------------------------------------


def header_lines(headers: Mapping[str, str]) -> str:
    """Headers as ``Name: value`` lines, every value whole (secrets arrive already masked)."""
    return "\n".join(f"{row['header']}: {row['value']}" for row in present.header_rows(headers))


def exchange_summary(exchange: StoredExchange | Exchange) -> str:
    """One line: ``POST url → HTTP 200 · 38 bytes · 123 ms · 1 result(s) · correlation id …``."""
    response = exchange.response
    answer = (f"HTTP {response.status} · {response.size} bytes"
              + (" (truncated)" if response.truncated else "")) if response else "no answer"
    results = (exchange.result_count if isinstance(exchange, StoredExchange)
               else len(exchange.results))
    return (f"{exchange.request.method} {exchange.request.url} → {answer} · "
            f"{present.millis(exchange.elapsed_ms)} · {results} result(s) · correlation id "
            f"{exchange.correlation_id} · started {present.when(exchange.started_at)}")


def code_block(label: str, body: str, *, key: str, language: str = "text",
               expanded: bool = False) -> None:
    """``body`` in a collapsible section: wrapped long lines and a one-click copy button."""
    with st.expander(label, expanded=expanded, key=key):
        st.code(body, language=language, wrap_lines=True)


def exchange_viewer(exchange: StoredExchange | Exchange, *, key: str,
                    expanded: bool = False) -> None:
    """One exchange, compact: a heading (number, integration, kind, trigger, ok/failed), a
    summary line (method + URL → status, size, elapsed, results, correlation id), the error,
    then request and response side by side, each with its headers and body in collapsible
    sections (``expanded`` opens the bodies) whose long lines wrap, and the contract
    violations with their JSON paths and severity."""
    response = exchange.response
    with st.container(border=True, key=f"{key}.exchange"):
        head = st.container(horizontal=True, vertical_alignment="center")
        with head:
            if isinstance(exchange, StoredExchange):
                number, integration = f"Exchange {exchange.id}", exchange.integration_name
            else:
                number, integration = "Exchange (not stored)", exchange.integration
            st.markdown(f"**{number}** · {present.text(integration or '(no integration)')} · "
                        f"{exchange.kind.value} · trigger {exchange.trigger.value}")
            status_badge("ok" if exchange.error is None else "failed")
        caption(exchange_summary(exchange))
        if exchange.error is not None:
            error(f"{exchange.error.kind.value}: {exchange.error.message}")
        truncated = (exchange.body_truncated if isinstance(exchange, StoredExchange)
                     else bool(response and response.truncated))
        if truncated:
            st.warning("A body was cut at the size limit; what is shown is incomplete.")
        left, right = st.columns(2)
        with left:
            st.markdown("**Request**")
            st.code(f"{exchange.request.method} {exchange.request.url}", language="text",
                    wrap_lines=True)
            code_block(f"Request headers ({len(exchange.request.headers)})",
                       header_lines(exchange.request.headers), key=f"{key}.request_headers")
            body, language = present.pretty_body(exchange.request.body)
            code_block("Request body", body, language=language, key=f"{key}.request_body",
                       expanded=expanded)
        with right:
            st.markdown("**Response**")
            if response is None:
                st.caption("No response was received.")
            else:
                st.code(f"HTTP {response.status} · {response.size} bytes"
                        + (" (truncated)" if response.truncated else ""), language="text")
                code_block(f"Response headers ({len(response.headers)})",
                           header_lines(response.headers), key=f"{key}.response_headers")
                body, language = present.pretty_body(response.body)
                code_block("Response body", body, language=language,
                           key=f"{key}.response_body", expanded=expanded)
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
            except ServiceError as exc:
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
        error(f"Nothing was saved: check {names} (see the messages beside the fields).")
    elif isinstance(exc, PermissionDenied):
        error(f"Not allowed: {exc}")
    else:
        error(exc)


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
            error(errors[name], icon=":material/error:")


def keyset_pager(cursors: list[Any], next_cursor: Any, *, shown: str, first: tuple[str, str],
                 following: tuple[str, str], on_next: Callable[[], None] | None = None) -> None:
    """``Page N · shown`` and two buttons over keyset pages: ``first`` (label, key) back to
    the first page, ``following`` (label, key) to the page after ``next_cursor`` (disabled
    when None). ``cursors`` is the session's list of the cursors of the pages before. The
    cursor moves in the buttons' callbacks, so a click is one script run."""
    def to_following() -> None:
        cursors.append(next_cursor)
        if on_next is not None:
            on_next()

    with st.container(horizontal=True, vertical_alignment="center"):
        st.caption(f"Page {len(cursors) + 1} · {shown}")
        st.button(first[0], key=first[1], disabled=not cursors, on_click=cursors.clear)
        st.button(following[0], key=following[1], disabled=next_cursor is None,
                  on_click=to_following)


def status_cells(frame: pd.DataFrame, *columns: str) -> Any:
    """``frame`` with the ``badge_label`` cells of ``columns`` in their badge colour (a pandas
    Styler, which ``st.dataframe`` renders; the values stay plain words)."""
    present_columns = [c for c in columns if c in frame.columns]
    if frame.empty or not present_columns:
        return frame
    return frame.style.map(present.label_style, subset=present_columns)


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
