"""Lookup Adaptor Debugger (admin, developer): the reference product's workflows step by
step, the exchange log with replay, diff, Copy as cURL and export, and conformance checks.

Widget keys (for tests):

- workflows: ``dbg.find.email``, ``dbg.find.phone``, ``dbg.find.submit``; ``dbg.workflow``
  (``Basic + Detailed`` / ``Autolinking + Detailed``), ``dbg.integration``, the Basic fields
  ``dbg.field.<attribute>``, ``dbg.test``; the rows table ``dbg.rows`` (single-row selection)
  and ``dbg.detail``; ``dbg.link`` (dialog ``dbg.link.yes``);
- exchange log: filters ``log.integration`` (0 = all), ``log.trigger``, ``log.error_kind``,
  ``log.status`` (0 = any), ``log.customer``, ``log.correlation``, ``log.window``; the table
  ``log.table`` (single-row selection), ``log.newer`` / ``log.older``, ``log.export``; the
  open exchange's ``log.replay``; ``?exchange=<id>`` opens one directly;
- conformance: ``conf.integration``, ``conf.email``, ``conf.phone``, ``conf.run``,
  ``conf.history``; ``?run=<id>`` opens one report card directly (the Health page's probe
  links).

The exchange log tab is a fragment: a page change, a filter or a row opened there reruns and
re-sends that tab only (Newer / Older move the cursor in callbacks: one run per click).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from dashboard import present, state, widgets
from dashboard.auth import require
from linker.core.permissions import Actor, Permission
from linker.jsondiff import BodyDiff
from linker.lookup import ErrorKind, Trigger
from linker.services.conformance import ConformanceCard
from linker.services.debugger import BASIC_WORKFLOW, DebugRun
from linker.services.errors import InvalidInput, NotFound, ServiceError
from linker.services.exchanges import ExchangeFilter
from linker.services.integrations import IntegrationView
from linker.store.exchanges import StoredExchange

WORKFLOWS = {"Basic + Detailed": BASIC_WORKFLOW, "Autolinking + Detailed": "autolink_detailed"}
CUSTOMER = "dbg.customer_id"
RUN = "dbg.run"
CURSORS = "log.cursors"
"""The cursors of the pages before the current one (a stack, newest page first)."""
FIELDS_FOR = "dbg.fields_for"
"""The (profile, adaptor) the Basic fields were last filled for."""
OPEN = "log.open"
REPLAYED = "log.replayed"
PAGE_SIZE = 50
WINDOWS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days",
           "all": "All time"}


# -- workflows ----------------------------------------------------------------------------------


def find_profile(actor: Actor) -> str | None:
    """Find the profile by email, then by phone; the chosen profile's id (kept)."""
    with st.form("dbg.find", border=False):
        email_col, phone_col = st.columns(2)
        email = email_col.text_input("Email", key="dbg.find.email",
                                     placeholder="ana.lopez@example.com")
        phone = phone_col.text_input("Phone", key="dbg.find.phone", placeholder="+14155550134")
        submitted = st.form_submit_button("Find the profile", key="dbg.find.submit",
                                          icon=":material/person_search:")
    if submitted:
        st.session_state.pop(RUN, None)
        try:
            found = state.services().debugger.find_profile(actor, email=email, phone=phone)
        except ServiceError as exc:
            widgets.show_error(exc)
            return None
        if found is None:
            st.session_state.pop(CUSTOMER, None)
            widgets.warning("Customer not found: no profile has this email or phone. Create it "
                            "in the Link workbench, or try another value.")
            return None
        st.session_state[CUSTOMER] = found.id
    customer_id: str | None = st.session_state.get(CUSTOMER)
    return customer_id


def workflows_tab(actor: Actor, views: Sequence[IntegrationView]) -> None:
    """Find the profile, pick a workflow and an adaptor, Test, and see every step."""
    customer_id = find_profile(actor)
    if customer_id is None:
        widgets.caption("Find a profile by its email or phone to start.")
        return
    try:
        customer = state.customer(actor, customer_id)
    except NotFound:
        st.session_state.pop(CUSTOMER, None)
        widgets.warning("That profile no longer exists; find another one.")
        return
    widgets.customer_card(customer, key="dbg.card")
    if not views:
        widgets.info("No integration yet: add one on the Integrations page.")
        return
    names = {v.id: v.name + ("" if v.active else " (inactive)") for v in views}
    left, right = st.columns(2)
    workflow = WORKFLOWS[str(left.radio("Workflow", list(WORKFLOWS), key="dbg.workflow",
                                        horizontal=True))]
    integration_id = int(right.selectbox("Adaptor", list(names), key="dbg.integration",
                                         format_func=lambda i: names[i]))
    svc = state.services()
    fields: dict[str, str] = {}
    try:
        if workflow == BASIC_WORKFLOW:
            fields = basic_fields(actor, customer_id, integration_id)
        elif not svc.debugger.autolink_fields(actor, integration_id):
            widgets.info(f"{names[integration_id]} has no auto-linking fields (or auto-linking "
                         "is off), so auto-linking would send no request. Test shows why.")
    except ServiceError as exc:
        widgets.show_error(exc)
        return
    if st.button("Test", key="dbg.test", type="primary", icon=":material/play_arrow:"):
        try:
            run = (svc.debugger.basic(actor, customer_id, integration_id, fields)
                   if workflow == BASIC_WORKFLOW
                   else svc.debugger.autolink(actor, customer_id, integration_id))
        except ServiceError as exc:
            widgets.show_error(exc)
            return
        state.changed()
        st.session_state[RUN] = (fields, run)
    kept = st.session_state.get(RUN)
    if kept is not None:
        run_fields, run = kept
        if (run.customer_id, run.integration_id, run.workflow) == (customer_id, integration_id,
                                                                   workflow):
            show_run(actor, run, run_fields)


def basic_fields(actor: Actor, customer_id: str, integration_id: int) -> dict[str, str]:
    """The Basic search fields (``dbg.field.<attribute>``), prefilled from the profile and
    filled again whenever another profile or adaptor is chosen, so no value typed for or
    taken from the previous selection stays."""
    specs = state.services().debugger.search_fields(actor, integration_id, customer_id)
    selection = (customer_id, integration_id)
    refill = st.session_state.get(FIELDS_FOR) != selection
    st.session_state[FIELDS_FOR] = selection
    fields: dict[str, str] = {}
    for attribute, label, prefill in specs:
        key = f"dbg.field.{attribute}"
        if refill or key not in st.session_state:
            st.session_state[key] = prefill
        fields[attribute] = st.text_input(label, key=key)
    return fields


def show_run(actor: Actor, run: DebugRun, fields: dict[str, str]) -> None:
    """Each step (raw request, raw response, violations) and the interpretation."""
    for index, step in enumerate(run.steps):
        st.subheader(f"Step {index + 1}: {present.text(step.title)}")
        if step.exchange is None:
            widgets.info(step.note)
        else:
            widgets.exchange_viewer(step.exchange, key=f"dbg.step.{index}")
        if index == 0:
            interpretation(actor, run, fields)
    st.subheader("What the profile would get")
    if run.detailed is None:
        widgets.caption(run.detailed_problem)
    else:
        detailed = run.detailed
        contact = " · ".join(v for v in (detailed.name, detailed.address, *detailed.emails,
                                         *detailed.phones) if v)
        widgets.caption(f"Record {detailed.external_customer_id}: {contact or 'no contact data'}")
        if detailed.custom_attributes:
            widgets.custom_attributes_table("dbg.attrs", detailed.custom_attributes)
        widgets.transaction_cards("dbg.tx", detailed.transactions)
        if not detailed.custom_attributes and not detailed.transactions:
            widgets.caption("No custom attributes and no transactions.")
    link_button(actor, run)


def interpretation(actor: Actor, run: DebugRun, fields: dict[str, str]) -> None:
    """The decision and its reason (auto-link) or the rows an agent would see (basic)."""
    if run.decision is not None:
        row = st.container(horizontal=True, vertical_alignment="center")
        with row:
            st.markdown("**Decision**")
            widgets.status_badge(run.decision.outcome.value)
        widgets.info(run.decision.reason, icon=":material/rule:")
        return
    if not run.rows:
        widgets.caption("No row: an agent would see no result.")
        return
    st.markdown("**The rows an agent would see**")
    frame = widgets.dataframe_of(
        [{"External id": r.external_customer_id,
          **{label: r.values.get(attribute, "") for attribute, label in run.columns}}
         for r in run.rows], ["External id", *(label for _, label in run.columns)])
    event = st.dataframe(frame, hide_index=True, key="dbg.rows", on_select="rerun",
                         selection_mode="single-row")
    index = _selected_row(event)
    if index is None or index >= len(run.rows) or len(run.rows) == 1:
        return
    chosen = run.rows[index].external_customer_id
    if st.button(f"Detailed lookup of {chosen}", key="dbg.detail",
                 icon=":material/manage_search:"):
        try:
            detailed = state.services().debugger.basic(actor, run.customer_id,
                                                       run.integration_id, fields,
                                                       detail_external_id=chosen)
        except ServiceError as exc:
            widgets.show_error(exc)
            return
        state.changed()
        st.session_state[RUN] = (fields, detailed)
        st.rerun()


def link_button(actor: Actor, run: DebugRun) -> None:
    """Link the previewed record (only when the user asks; agents and admins)."""
    external_id = run.linkable_external_id
    if external_id is None:
        return
    if not actor.can(Permission.LINK):
        widgets.caption("Nothing was linked. Linking needs the agent or admin role.")
        return

    def link() -> None:
        state.services().linking.link(actor, run.customer_id, run.integration_id, external_id)
        st.session_state.pop(RUN, None)
        state.done(f"Linked the profile to {run.integration_name} (external id {external_id}).")

    widgets.confirm_button(
        "Link", key="dbg.link", title="Link this record",
        message=f"Link the profile to {present.bold(run.integration_name)} record "
                f"{present.code(external_id)}? Nothing is linked until you confirm.",
        confirm_label="Yes, link", on_confirm=link, button_type="primary")


def _selected_row(event: Any) -> int | None:
    try:
        rows = event["selection"]["rows"]
    except (KeyError, TypeError):
        return None
    return int(rows[0]) if rows else None


# -- exchange log -------------------------------------------------------------------------------


def log_filters(views: Sequence[IntegrationView]) -> ExchangeFilter:
    """The filter row; the page restarts at the newest exchange when a filter changes."""
    names = {v.id: v.name for v in views}
    a, b, c, d = st.columns(4)
    integration_id = a.selectbox("Integration", [0, *names], key="log.integration",
                                 on_change=_first_page,
                                 format_func=lambda i: "All integrations" if i == 0
                                 else names.get(i, str(i)))
    trigger = b.selectbox("Trigger", ["", *(t.value for t in Trigger)], key="log.trigger",
                          on_change=_first_page, format_func=lambda t: t or "Any trigger")
    error_kind = c.selectbox("Result", ["", "ok", "failed", *(k.value for k in ErrorKind)],
                             key="log.error_kind", on_change=_first_page,
                             format_func=lambda k: k or "Any result")
    window = d.selectbox("Time", list(WINDOWS), index=1, key="log.window",
                         on_change=_first_page, format_func=lambda w: WINDOWS[w])
    e, f, g = st.columns([1, 2, 2])
    status = e.number_input("HTTP status", min_value=0, max_value=599, value=0, step=1,
                            key="log.status", on_change=_first_page,
                            help="0 = any status")
    customer = f.text_input("Customer id", key="log.customer", on_change=_first_page)
    correlation = g.text_input("Correlation id", key="log.correlation", on_change=_first_page)
    return ExchangeFilter(integration_id=int(integration_id) or None, trigger=trigger or None,
                          error_kind=error_kind or None, status=int(status) or None,
                          customer_id=customer.strip() or None,
                          correlation_id=correlation.strip() or None,
                          since=state.since(str(window)))


def _first_page() -> None:
    st.session_state[CURSORS] = []
    close_exchange()


def close_exchange() -> None:
    """No exchange open: none below the log, none in the address bar."""
    st.session_state.pop(OPEN, None)
    st.query_params.pop("exchange", None)


def show_exchange(exchange_id: int) -> None:
    """Open exchange ``exchange_id`` below the log and put ``?exchange=<id>`` in the address
    bar (the link can be shared); a replay of another exchange is no longer shown."""
    if st.session_state.get(OPEN) != exchange_id:
        st.session_state.pop(REPLAYED, None)
    st.session_state[OPEN] = exchange_id
    st.query_params["exchange"] = str(exchange_id)


def _newer_page() -> None:
    """Newer: back one page (a callback, so the click takes one run)."""
    cursors: list[str | None] = st.session_state.setdefault(CURSORS, [])
    if cursors:
        cursors.pop()


def _older_page(next_cursor: str) -> None:
    """Older: the page after ``next_cursor`` (a callback, so the click takes one run)."""
    st.session_state.setdefault(CURSORS, []).append(next_cursor)


@st.fragment
def exchange_log_tab(actor: Actor, views: Sequence[IntegrationView]) -> None:
    """Filters, one page of the log (newest first), Newer / Older, export, the viewer. A
    fragment: a click here (a page, a filter, a row, Replay) reruns and re-sends only this tab,
    not the workflows' last run or the conformance card."""
    filters = log_filters(views)
    cursors: list[str | None] = st.session_state.setdefault(CURSORS, [])
    after = cursors[-1] if cursors else None
    svc = state.services()
    try:
        page = svc.exchange_log.page(actor, filters, after=after, limit=PAGE_SIZE)
    except InvalidInput as exc:
        for field, message in exc.fields.items():
            widgets.error(f"{field.replace('_', ' ')}: {message}")
        return
    except ServiceError as exc:
        widgets.show_error(exc)
        return
    if not page.rows:
        widgets.info("No exchange matches these filters." if not cursors
                     else "No older exchange.")
    else:
        log_table(page.rows)
    nav = st.container(horizontal=True)
    with nav:
        st.button("Newer", key="log.newer", icon=":material/chevron_left:",
                  disabled=not cursors, on_click=_newer_page)
        st.button("Older", key="log.older", icon=":material/chevron_right:",
                  disabled=page.next_cursor is None, on_click=_older_page,
                  args=(str(page.next_cursor),))
        if actor.can(Permission.EXPORT_EXCHANGES):
            st.download_button("Export JSONL (redacted)", key="log.export",
                               data=lambda: export_file(actor, filters),
                               file_name="linker-exchanges.jsonl",
                               mime="application/x-ndjson", icon=":material/download:",
                               on_click="ignore")
    widgets.caption(f"Page {len(cursors) + 1} · {len(page.rows)} exchange(s), newest first.")
    chosen = st.session_state.get(OPEN)
    if chosen is not None:
        open_exchange(actor, int(chosen))


def log_table(rows: Sequence[Any]) -> None:
    """The page's exchanges; selecting a row opens it below."""
    frame = widgets.dataframe_of([{
        "Id": r.id, "Started": present.when(r.started_at), "Integration": r.integration_name,
        "Kind": r.kind.value, "Trigger": r.trigger.value,
        "Result": "ok" if r.ok else "failed",
        "Error": r.error_kind.value if r.error_kind else "",
        "Status": r.status, "ms": round(r.elapsed_ms), "Results": r.result_count,
        "Customer": r.customer_id or "", "Correlation id": r.correlation_id,
    } for r in rows], ["Id", "Started", "Integration", "Kind", "Trigger", "Result", "Error",
                       "Status", "ms", "Results", "Customer", "Correlation id"])
    event = st.dataframe(widgets.status_cells(frame, "Result"), hide_index=True,
                         key="log.table", on_select="rerun", selection_mode="single-row",
                         column_config={"Id": st.column_config.NumberColumn(format="%d"),
                                        "Status": st.column_config.NumberColumn(format="%d")})
    index = _selected_row(event)
    if index is not None and index < len(rows) and st.session_state.get(OPEN) != rows[index].id:
        show_exchange(rows[index].id)


def export_file(actor: Actor, filters: ExchangeFilter) -> bytes:
    """The filtered log as redacted JSON lines. Bytes: Streamlit keeps a download in memory
    and accepts only str, bytes or a few ``io`` types from the callable (a
    ``SpooledTemporaryFile`` made the button do nothing)."""
    lines = state.services().exchange_log.export_jsonl(actor, filters)
    return "".join(f"{line}\n" for line in lines).encode()


def open_exchange(actor: Actor, exchange_id: int) -> None:
    """The exchange viewer with Replay (and its diff) and Copy as cURL."""
    svc = state.services()
    try:
        exchange = svc.exchange_log.get(actor, exchange_id)
    except ServiceError as exc:
        widgets.show_error(exc)
        st.session_state.pop(OPEN, None)
        return
    st.subheader(f"Exchange {exchange_id}")
    widgets.exchange_viewer(exchange, key="log.viewer")
    curl_section(actor, exchange)
    if actor.can(Permission.REPLAY_EXCHANGES):
        replay_section(actor, exchange)


def curl_section(actor: Actor, exchange: StoredExchange) -> None:
    """Copy as cURL: secrets as $ENV_VARS, the signing note and the `linker lookup` form."""
    with st.expander("Copy as cURL", key="log.curl"):
        try:
            curl = state.services().exchange_log.curl(actor, exchange.id)
        except ServiceError as exc:
            widgets.show_error(exc)
            return
        st.code(curl.command, language="bash", wrap_lines=True)
        if curl.env:
            st.dataframe(widgets.dataframe_of([{"Variable": f"${e.name}", "Meaning": e.meaning}
                                               for e in curl.env], ["Variable", "Meaning"]),
                         hide_index=True, key="log.curl.env")
        widgets.caption(curl.note)
        st.code(curl.lookup_command, language="bash", wrap_lines=True)


def replay_section(actor: Actor, exchange: StoredExchange) -> None:
    """Replay now (re-signed, new time and correlation id): the new exchange and the diff."""
    if st.button("Replay now", key="log.replay", icon=":material/replay:",
                 help="Send the same request again, re-signed, with a new correlation id"):
        try:
            result = state.services().replay.replay(actor, exchange.id)
        except ServiceError as exc:
            widgets.show_error(exc)
            return
        state.changed()
        st.session_state[REPLAYED] = (exchange.id, result)
    kept = st.session_state.get(REPLAYED)
    if kept is None or kept[0] != exchange.id:
        return
    result = kept[1]
    if result.url_changed:
        widgets.warning("The integration's URL changed since the original was sent; the "
                        "replay went to the current URL.")
    st.subheader(f"Replay: exchange {result.replay.id}")
    diff_view(result.diff)
    widgets.exchange_viewer(result.replay, key="log.replay_viewer")


def diff_view(diff: BodyDiff) -> None:
    """The differences between the original and the replayed response body."""
    if diff.same:
        widgets.success("The response body is the same as the original's.")
        return
    if diff.mode == "json":
        st.markdown(f"**{len(diff.changes)} difference(s) in the response body**")
        st.dataframe(widgets.dataframe_of([{
            "Path": c.path, "Change": c.op.value,
            "Before": present.value_text(c.old) if c.has_before else "",
            "After": present.value_text(c.new) if c.has_after else ""}
            for c in diff.changes], ["Path", "Change", "Before", "After"]), hide_index=True,
            key="log.diff")
    else:
        st.code("\n".join(diff.text_lines), language="diff")


# -- conformance ------------------------------------------------------------------------------


def open_linked_card(actor: Actor, wanted: str | None) -> ConformanceCard | None:
    """The card ``?run=<id>`` names, chosen in the tab's pickers once per id (so a later
    pick of another card sticks); None without a link or when it cannot be read."""
    if not (wanted and wanted.isdigit()):
        return None
    try:
        card = state.services().conformance.get(actor, int(wanted))
    except ServiceError as exc:
        widgets.show_error(exc)
        return None
    if st.session_state.get("conf.linked") != card.id and card.integration_id is not None:
        st.session_state["conf.linked"] = card.id
        st.session_state["conf.integration"] = card.integration_id
        st.session_state["conf.history"] = card.id
    return card


def conformance_tab(actor: Actor, views: Sequence[IntegrationView],
                    linked: ConformanceCard | None = None) -> None:
    """Run the checks against one adaptor and list its report cards (``linked``, from a
    deep link, among them even when older than the list)."""
    if not views:
        widgets.info("No integration yet: add one on the Integrations page.")
        return
    names = {v.id: v.name for v in views}
    integration_id = int(st.selectbox("Adaptor", list(names), key="conf.integration",
                                      format_func=lambda i: names[i]))
    with st.form("conf.form", border=False):
        a, b = st.columns(2)
        email = a.text_input("Known email", key="conf.email",
                             help="The email of a person the adaptor holds")
        phone = b.text_input("Known phone (optional)", key="conf.phone")
        run = st.form_submit_button("Run conformance checks", key="conf.run", type="primary",
                                    icon=":material/fact_check:")
    svc = state.services()
    if run:
        with st.spinner("Running the checks (a few calls to the adaptor)…"):
            try:
                card = svc.conformance.run(actor, integration_id, email, phone or None)
            except InvalidInput as exc:
                for field, message in exc.fields.items():
                    widgets.error(f"{field.replace('_', ' ')}: {message}")
                card = None
            except ServiceError as exc:
                widgets.show_error(exc)
                card = None
        if card is not None:
            state.changed()
            st.session_state["conf.last"] = card.id
    try:
        cards = svc.conformance.runs(actor, integration_id)
    except ServiceError as exc:
        widgets.show_error(exc)
        return
    if linked is not None and linked.integration_id == integration_id and all(
            c.id != linked.id for c in cards):
        cards = [*cards, linked]
    if not cards:
        widgets.caption("No conformance run yet for this adaptor.")
        return
    labels = {c.id: f"{present.when(c.started_at)} · {'passed' if c.passed else 'failed'} · "
                    f"by {c.actor}" for c in cards}
    chosen = st.selectbox("Report card", list(labels), key="conf.history",
                          format_func=lambda i: labels[i])
    report_card(actor, next(c for c in cards if c.id == chosen))


def report_card(actor: Actor, card: ConformanceCard) -> None:
    """Pass / warn / fail per check, with the exchange behind each."""
    counts = card.counts()
    verdict = "passes" if card.passed else "fails"
    summary = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    (widgets.success if card.passed else widgets.error)(
        f"{card.integration_name} {verdict} the required checks ({summary}); "
        f"{present.millis(card.elapsed_ms)} in all.")
    checks_table(card)
    ids = list(dict.fromkeys(c.exchange_id for c in card.checks if c.exchange_id is not None))
    if ids and actor.can(Permission.READ_EXCHANGE_LOG):
        shown = st.selectbox("Open the exchange of a check", [0, *ids], key="conf.exchange",
                             format_func=lambda i: "Choose an exchange…" if i == 0
                             else f"Exchange {i}")
        if shown:
            widgets.exchange_viewer(state.exchange(actor, int(shown)), key="conf.viewer")


def checks_table(card: ConformanceCard) -> None:
    """Every check in a static table (no inner scroll, long text wrapped): the adaptor's text
    escaped, as ``st.table`` reads Markdown; no exchange (a skipped check) is an empty cell."""
    frame = widgets.dataframe_of([{
        "Check": present.text(c.title), "Result": c.status.value,
        "Required": "required" if c.required else "optional",
        "What was seen": present.text(c.message),
        "Exchange": "" if c.exchange_id is None else str(c.exchange_id)} for c in card.checks],
        ["Check", "Result", "Required", "What was seen", "Exchange"])
    st.table(widgets.status_cells(frame, "Result"), hide_index=True)


# -- the page -----------------------------------------------------------------------------------


def main() -> None:
    """The page: workflows, the exchange log, conformance (one tab each)."""
    actor = require(Permission.TEST_INTEGRATIONS, page="debugger")
    st.title("Lookup Adaptor Debugger")
    st.caption("Every request here is real and stored in the exchange log (trigger debugger); "
               "nothing is linked unless you click Link.")
    views = state.integration_list(actor)
    wanted = st.query_params.get("exchange")
    deep_link = bool(wanted and wanted.isdigit())
    if deep_link and st.session_state.get(OPEN) != int(str(wanted)):
        st.session_state[OPEN] = int(str(wanted))
    linked = open_linked_card(actor, st.query_params.get("run"))
    opened = "Exchange log" if deep_link else ("Conformance" if linked else None)
    workflows, log, conformance = st.tabs(["Workflows", "Exchange log", "Conformance"],
                                          default=opened)
    with workflows:
        workflows_tab(actor, views)
    with log:
        exchange_log_tab(actor, views)
    with conformance:
        conformance_tab(actor, views, linked)


if __name__ == "__main__":
    main()
