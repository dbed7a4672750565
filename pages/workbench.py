"""Link workbench: find or create a customer, see what linked systems know, link and unlink.

Agents and admins do everything here; support leads read (find, open, the card, pulled data,
"Why (not) linked?") without any control that changes something. Every action is one service
call (``dashboard.state.services()``); this page only lays out what the services return.
A button that writes does it in its ``on_click`` callback, so a click costs one script run:
the run that follows shows the result (the flash message, or the error the callback kept
with ``note`` for ``show_notes`` to show where the action's controls are).

Widget keys (the AppTest and e2e tests use them):

- find: ``wb.find.by`` (Email / Phone / Name), ``wb.find.query``, ``wb.find.submit``, then
  ``wb.open.<customer id>`` per result (a single match opens at once);
- create: ``wb.create.name``, ``wb.create.email``, ``wb.create.phone``,
  ``wb.create.phone_type``, ``wb.create.submit``; when the new profile looks like existing
  customers: ``wb.create.lookalike.open.<customer id>``, ``wb.create.lookalike.confirm``
  (create another anyway) and ``wb.create.lookalike.cancel``;
- the open profile: ``wb.card.allow.<integration id>`` (allow auto-linking again),
  ``wb.refresh.<integration id>``, ``wb.unlink.<integration id>`` and ``wb.unlink_all`` (each
  opens a dialog whose confirm button is ``<key>.yes``), ``wb.why.<integration id>``;
- link: ``wb.search.in``, the search fields, ``wb.search.submit``, the results table
  (single-row selection), the system to link and ``wb.link.submit``. The fields, the table and
  the system picker are keyed per profile and per form / search (``field_key``,
  ``results_key``, ``system_key``), so the browser can never send back what it held for
  another profile or an earlier search; each field sits in a container keyed
  ``wb.search.field.<attribute>`` and the table in one keyed ``wb.results``, stable places for
  the browser tests.

The open profile's id is kept in ``wb.customer_id`` (and in the ``customer`` query parameter,
so a reload or a link from another page opens it).

What opening or creating the profile did (``wb.opened``) is shown until the next action on
the profile (link, unlink, unlink all, refresh, allow auto-linking again): a message belongs to
the action that produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pandas as pd
import streamlit as st

from dashboard import present, state, widgets
from dashboard.auth import require
from linker.core.permissions import Actor, Permission
from linker.services.customers import (
    CreatedCustomer,
    CustomerSummary,
    CustomerView,
    LinkView,
    PhoneInput,
    PulledDataView,
    SuppressionView,
)
from linker.services.errors import InvalidInput, NotFound, ServiceError
from linker.services.facade import Services
from linker.services.linking import SearchOutcome, SearchRow, SystemChoice, SystemHit
from linker.services.lookalikes import LookAlike, find_lookalikes
from linker.services.profile import OpenedProfile
from linker.services.refresh_outcome import RefreshOutcome

ALL_UNLINKED = "All unlinked external systems"
FIND_BY = ("Email", "Phone", "Name")
PHONE_TYPES = ("MOBILE", "HOME", "OFFICE", "OTHER")
RECENT = 10

CUSTOMER = "wb.customer_id"
OPENED = "wb.opened"
"""What opening (or creating) the current profile did: ``OpenedProfile | CreatedCustomer``."""
FOUND = "wb.found"
PENDING = "wb.lookalike_pending"
"""A create held back as it looks like existing profiles: ``(NewCustomer, [LookAlike])``."""
SEARCHED = "wb.searched"
"""The last search (``Searched``): shown only while the same profile and the same Search In
choice are open."""
RESULTS = "wb.results"
FORM_SERIAL = "wb.search.form_serial"
"""Bumped whenever the search form starts again from the open profile's values (a profile
opened, closed, linked, unlinked): the fields' keys carry it."""
SEARCH_SERIAL = "wb.search.serial"
"""Bumped by every search: the results table's and the system picker's keys carry it."""
NOTES = "wb.notes"
"""What a click's callback left to be shown, per place on the page (``note``): the run that
follows shows it where the action's controls are; the run's end forgets the rest."""


class Searched(NamedTuple):
    """A search made on the open profile, and the serial its table and picker are keyed by."""

    customer_id: str
    chosen: str
    outcome: SearchOutcome
    serial: int


def next_serial(name: str) -> int:
    """Bump the session counter ``name`` and return its new value."""
    value = int(st.session_state.get(name, 0)) + 1
    st.session_state[name] = value
    return value


def field_key(customer_id: str, attribute: str) -> str:
    """The widget key of a search field: per profile and per search form, so a field never
    keeps (in the browser) a value typed or prefilled for another profile."""
    return f"wb.search.value.{customer_id}.{st.session_state.get(FORM_SERIAL, 0)}.{attribute}"


def results_key(searched: Searched) -> str:
    """The results table's widget key: per profile and per search (a fresh selection)."""
    return f"{RESULTS}.{searched.customer_id}.{searched.serial}"


def system_key(searched: Searched, row: int) -> str:
    """The system picker's widget key: per profile, search and picked row."""
    return f"wb.link.system.{searched.customer_id}.{searched.serial}.{row}"


# -- what a click's callback leaves for the run that follows ------------------------------------


def note(place: str, message: str | ServiceError | None,
         kind: state.FlashKind = "error") -> None:
    """Keep ``message`` (an error, or text of ``kind``) to be shown at ``place`` by the run
    that follows the click (a callback draws nothing itself)."""
    if message is not None:
        st.session_state.setdefault(NOTES, {}).setdefault(place, []).append((kind, message))


def show_notes(place: str) -> None:
    """Show (once) what the click's callback left for ``place``."""
    for kind, message in st.session_state.get(NOTES, {}).pop(place, []):
        if isinstance(message, ServiceError):
            widgets.show_error(message)
        else:
            getattr(widgets, kind)(message)


# -- integrations --------------------------------------------------------------------------------


def integrations(actor: Actor) -> list[SystemChoice]:
    """Every integration (id, name, active), for *Search In* and the "Why (not) linked?" list."""
    return state.systems(actor)


# -- opening a profile ---------------------------------------------------------------------------


def open_profile(svc: Services, actor: Actor, customer_id: str) -> ServiceError | None:
    """Make ``customer_id`` the open profile: ``profiles.open`` refreshes stale data and
    auto-links it, and what it did is kept to be shown; the error when it failed."""
    forget_search()
    state.reset_widgets("wb.why.")
    st.session_state[CUSTOMER] = customer_id
    st.query_params["customer"] = customer_id
    problem: ServiceError | None = None
    try:
        st.session_state[OPENED] = svc.profiles.open(actor, customer_id)
    except NotFound as exc:
        close_profile()
        problem = exc
    except ServiceError as exc:
        st.session_state.pop(OPENED, None)
        problem = exc
    state.changed(state.PROFILE_WRITE)
    return problem


def open_clicked(svc: Services, actor: Actor, customer_id: str, place: str) -> None:
    """Callback of an Open button: open the profile; an error is shown at ``place``."""
    note(place, open_profile(svc, actor, customer_id))


def close_profile() -> None:
    """Forget the open profile (and which of its "why" sections were open)."""
    for key in (CUSTOMER, OPENED):
        st.session_state.pop(key, None)
    state.reset_widgets("wb.why.")
    st.query_params.pop("customer", None)
    forget_search()


def forget_search() -> None:
    """Drop the last search and start the search form again from the profile's values (new
    widget keys: the browser's values of the old ones are never read again)."""
    st.session_state.pop(SEARCHED, None)
    next_serial(FORM_SERIAL)


def forget_opened() -> None:
    """A later action on the profile: what opening or creating it did is no longer shown."""
    st.session_state.pop(OPENED, None)


def refresh_lines(outcomes: Sequence[RefreshOutcome]) -> list[str]:
    """One sentence per refresh."""
    lines = []
    for o in outcomes:
        if o.ok:
            lines.append(f"Refreshed {o.integration_name}: {o.custom_attribute_count} custom "
                         f"attributes, {o.transaction_count} transactions.")
        else:
            kind = f" ({o.error_kind})" if o.error_kind else ""
            lines.append(f"Refresh of {o.integration_name} {o.status}{kind}: {o.error}"
                         + (f" (exchange {o.exchange_id})" if o.exchange_id else ""))
    return lines


def show_what_happened(done: OpenedProfile | CreatedCustomer) -> None:
    """What creating or opening the profile did: refreshes and auto-link attempts."""
    if isinstance(done, CreatedCustomer):
        linked = [r.integration_name for r in done.autolink if r.link_id is not None]
        widgets.success(f"Created {done.customer.name or 'the customer'}. "
                        + (f"Auto-linked to {', '.join(linked)}." if linked
                           else "Auto-linking found no system to link to."))
        if done.autolink:
            widgets.autolink_table(done.autolink, key="wb.autolink_outcomes")
        return
    for outcome, line in zip(done.refreshes, refresh_lines(done.refreshes), strict=True):
        (widgets.caption if outcome.ok else widgets.warning)(line)
    if done.newly_linked:
        widgets.success(f"Opening the profile auto-linked it to {', '.join(done.newly_linked)}.")
    if done.autolink:
        with st.expander(f"Auto-linking when opened: {len(done.autolink)} attempt(s)",
                         expanded=bool(done.newly_linked), key="wb.opened.autolink"):
            widgets.autolink_table(done.autolink, key="wb.autolink_outcomes")
    if not done.refreshes and not done.autolink:
        widgets.caption("Opened: linked data is fresh and no auto-link attempt was needed.")
    else:
        widgets.caption(f"Done by the system because you opened the profile; the audit log "
                        f"and the exchange log record it as \"{done.acted_as}\".")


# -- find and create -----------------------------------------------------------------------------


def find_section(svc: Services, actor: Actor) -> None:
    """Find by email, phone or name; one match opens at once, several get Open buttons.

    The criteria are kept, not the results, so the list is read afresh after every change."""
    st.subheader("Find a customer")
    with st.form("wb.find", border=False):
        by_col, query_col = st.columns([1, 3])
        by = by_col.selectbox("Find by", FIND_BY, key="wb.find.by")
        query = query_col.text_input("Email, phone or name", key="wb.find.query",
                                     placeholder="ana.lopez@example.com")
        submitted = st.form_submit_button("Find", key="wb.find.submit", type="primary")
    if submitted:
        if query.strip():
            st.session_state[FOUND] = (str(by), query.strip())
        else:
            st.session_state.pop(FOUND, None)
            widgets.warning("Type an email, a phone number or part of a name.")
    criteria = st.session_state.get(FOUND)
    try:
        if criteria is None:
            label, found = "Newest customers", state.find_customers(actor, limit=RECENT)
        else:
            label = f"{criteria[0]} {criteria[1]}"
            found = state.find_customers(actor, limit=25, **{criteria[0].lower(): criteria[1]})
    except ServiceError as exc:
        st.session_state.pop(FOUND, None)
        widgets.show_error(exc)
        return
    if submitted and criteria is not None and len(found) == 1:
        problem = open_profile(svc, actor, found[0].id)
        if problem is not None:
            widgets.show_error(problem)
    show_notes("find")
    if not found:
        widgets.info(f"No customer matches {label}." if criteria else "No customers yet.")
        return
    widgets.caption(f"{label}: {len(found)} found" if criteria else label)
    for summary in found:
        found_row(svc, actor, summary)


def found_row(svc: Services, actor: Actor, summary: CustomerSummary) -> None:
    """A search result: name, contact, linked systems and an Open button."""
    row = st.container(horizontal=True, vertical_alignment="center", key=f"wb.row.{summary.id}")
    with row:
        link = (f" {widgets.LINK} {present.text(', '.join(summary.linked_systems))}"
                if summary.linked_systems else "")
        contact = " · ".join(v for v in (summary.main_email, *summary.phones[:1]) if v)
        st.markdown(f"{present.bold(summary.name or '(no name)')} · "
                    f"{present.text(contact or 'no contact data')}{link}")
        current = st.session_state.get(CUSTOMER) == summary.id
        st.button("Open", key=f"wb.open.{summary.id}", disabled=current, on_click=open_clicked,
                  args=(svc, actor, summary.id, "find"))


class NewCustomer(NamedTuple):
    """What the create form holds."""

    name: str
    email: str
    phone: str
    phone_type: str


def create_section(svc: Services, actor: Actor) -> None:
    """Create a profile (name, email, phone with type); auto-linking runs at once. When it
    looks like an existing customer, say which (with Open) and ask before creating another.
    The buttons' callbacks do the work (``create_clicked``), so a click is one run."""
    errors = widgets.field_errors("wb.create")
    pending: tuple[NewCustomer, list[LookAlike]] | None = st.session_state.get(PENDING)
    with st.expander("New profile", expanded=bool(errors or pending), key="wb.create.open"):
        with st.form("wb.create", border=False):
            st.text_input("Name", key="wb.create.name")
            widgets.field_error(errors, "name")
            st.text_input("Email", key="wb.create.email")
            widgets.field_error(errors, "emails")
            number_col, type_col = st.columns([3, 1])
            number_col.text_input("Phone", key="wb.create.phone", placeholder="+1 415 555 0134")
            type_col.selectbox("Type", PHONE_TYPES, key="wb.create.phone_type")
            widgets.field_error(errors, "phones", "address")
            st.form_submit_button("Create and auto-link", key="wb.create.submit",
                                  type="primary", on_click=create_clicked, args=(svc, actor))
        show_notes("create")
        if pending is not None:
            confirm_lookalike(svc, actor, *pending)


def create_clicked(svc: Services, actor: Actor) -> None:
    """Callback of Create: create at once, or, when the new profile looks like existing
    customers, keep it pending to ask first."""
    values = st.session_state
    draft = NewCustomer(str(values.get("wb.create.name", "")),
                        str(values.get("wb.create.email", "")),
                        str(values.get("wb.create.phone", "")),
                        str(values.get("wb.create.phone_type", PHONE_TYPES[0])))
    try:
        alikes = find_lookalikes(svc.customers, actor, draft.name,
                                 [draft.email] if draft.email.strip() else [],
                                 [draft.phone] if draft.phone.strip() else [])
    except ServiceError as exc:
        note("create", exc)
        return
    if alikes:
        st.session_state[PENDING] = (draft, alikes)
    else:
        create_customer(svc, actor, draft)


def confirm_lookalike(svc: Services, actor: Actor, draft: NewCustomer,
                      alikes: Sequence[LookAlike]) -> None:
    """"Looks like an existing customer": each one with why and Open; then Create another
    anyway or Cancel."""
    with st.container(border=True, key="wb.create.lookalike"):
        for alike in alikes:
            contact = " · ".join(v for v in (alike.customer.main_email, *alike.customer.phones[:1])
                                 if v)
            widgets.warning(f"Looks like an existing customer: {alike.customer.name or '(no name)'}"
                            f" ({alike.reason}" + (f"; {contact}" if contact else "") + ").")
            st.button(f"Open {present.text(alike.customer.name or alike.customer.id)}",
                      key=f"wb.create.lookalike.open.{alike.customer.id}", type="tertiary",
                      icon=":material/open_in_new:", on_click=open_lookalike,
                      args=(svc, actor, alike.customer.id))
        again, cancel = st.columns(2)
        again.button("Create another profile anyway", key="wb.create.lookalike.confirm",
                     on_click=create_anyway, args=(svc, actor, draft))
        cancel.button("Cancel", key="wb.create.lookalike.cancel", on_click=forget_pending)


def forget_pending() -> None:
    """Callback of the look-alike prompt's Cancel: nothing is created."""
    st.session_state.pop(PENDING, None)


def open_lookalike(svc: Services, actor: Actor, customer_id: str) -> None:
    """Callback of a look-alike's Open: drop the pending create and open that profile."""
    forget_pending()
    open_clicked(svc, actor, customer_id, "create")


def create_anyway(svc: Services, actor: Actor, draft: NewCustomer) -> None:
    """Callback of "Create another profile anyway"."""
    forget_pending()
    create_customer(svc, actor, draft)


def create_customer(svc: Services, actor: Actor, draft: NewCustomer) -> None:
    """Create the profile, open it and say what auto-linking did (errors beside the fields);
    called from a callback: the run that follows shows it all."""
    try:
        created = svc.customers.create(
            actor, draft.name, [draft.email] if draft.email.strip() else [],
            [PhoneInput(draft.phone, draft.phone_type)] if draft.phone.strip() else [])
    except InvalidInput as exc:
        widgets.remember_errors("wb.create", exc)
        return
    except ServiceError as exc:
        widgets.remember_errors("wb.create", None)
        note("create", exc)
        return
    widgets.remember_errors("wb.create", None)
    state.reset_widgets("wb.create.")
    forget_search()
    st.session_state[CUSTOMER] = created.customer.id
    st.query_params["customer"] = created.customer.id
    st.session_state[OPENED] = created
    st.session_state.pop(FOUND, None)
    state.after_write(scope=state.PROFILE_WRITE)


# -- the open profile ------------------------------------------------------------------------------


def profile_section(svc: Services, actor: Actor, customer_id: str,
                    known: Sequence[SystemChoice]) -> None:
    """The card, what opening did, each linked system's data, linking and the why."""
    try:
        view = state.customer(actor, customer_id)
    except NotFound as exc:
        close_profile()
        widgets.show_error(exc)
        return
    can_link = actor.can(Permission.LINK)
    st.divider()
    head = st.container(horizontal=True, vertical_alignment="center")
    head.subheader(f"Customer: {present.text(view.name or '(no name)')}")
    head.button("Close", key="wb.close", on_click=close_profile)

    def allow_again(suppression: SuppressionView) -> None:
        act("card", lambda: svc.linking.clear_suppression(actor, view.id,
                                                         suppression.integration_id),
            f"Auto-linking to {suppression.integration_name} is allowed again; it runs the "
            "next time the profile is opened.")

    widgets.customer_card(view, key="wb.card", on_allow_autolink=allow_again if can_link
                          else None)
    show_notes("card")
    done = st.session_state.get(OPENED)
    if done is not None:
        show_what_happened(done)
    linked_systems(svc, actor, view, can_link)
    if can_link:
        with st.container(key="wb.link_section", border=True):
            link_section(svc, actor, view, known)
    why_section(actor, view, known)


def act(place: str, call: Callable[[], object], message: str,
        kind: state.FlashKind = "success") -> None:
    """In a click's callback, run a write on the open profile; on success clear caches and
    flash ``message`` for the run that follows, else show why at ``place``."""
    forget_opened()
    try:
        call()
    except ServiceError as exc:
        note(place, exc)
        return
    state.after_write(message, kind, state.PROFILE_WRITE)


def linked_systems(svc: Services, actor: Actor, view: CustomerView, can_link: bool) -> None:
    """Per linked system: the link, fetched-at, Refresh, Unlink, custom attributes and
    transaction cards. Then "Unlink customer" from all systems."""
    st.subheader("Linked systems")
    if not view.links:
        widgets.caption("Not linked to any external system.")
        return
    pulled = {p.integration_id: p for p in view.pulled}
    for link in view.links:
        with st.container(border=True, key=f"wb.linked.{link.integration_id}"):
            linked_system(svc, actor, view, link, pulled.get(link.integration_id), can_link)
    if can_link:
        names = ", ".join(link.integration_name for link in view.links)
        widgets.confirm_button(
            "Unlink customer", key="wb.unlink_all", title="Unlink from all systems",
            message=f"Unlink {present.bold(view.name or view.id)} from **all** systems "
                    f"({present.text(names)})? Their "
                    "transactions and custom attributes, and the emails and phones they "
                    "brought, disappear from the profile (what it had on its own stays), and "
                    "it is never auto-linked to them again unless someone allows it.",
            confirm_label="Yes, unlink from all",
            on_confirm=lambda: unlink_all(svc, actor, view.id))


def unlink_all(svc: Services, actor: Actor, customer_id: str) -> None:
    """Unlink from every system, then say how many."""
    forget_opened()
    count = svc.linking.unlink_all(actor, customer_id)
    forget_search()
    state.done(f"Unlinked from {count} system(s); auto-linking to them is off for this profile.",
               scope=state.PROFILE_WRITE)


def unlink_one(svc: Services, actor: Actor, customer_id: str, link: LinkView) -> None:
    """Unlink from one system."""
    forget_opened()
    svc.linking.unlink(actor, customer_id, link.integration_id)
    forget_search()
    state.done(f"Unlinked from {link.integration_name}; auto-linking to it is off for this "
               "profile.", scope=state.PROFILE_WRITE)


def refresh_one(svc: Services, actor: Actor, customer_id: str, link: LinkView) -> None:
    """Callback of Refresh: refresh one linked system now and say how it went."""
    forget_opened()
    try:
        outcomes = svc.refresh.refresh(actor, customer_id, link.integration_id)
    except ServiceError as exc:
        note(f"refresh.{link.integration_id}", exc)
        return
    failed = any(not o.ok for o in outcomes)
    state.after_write(" ".join(refresh_lines(outcomes)) or "Nothing to refresh.",
                      "warning" if failed else "success", state.PROFILE_WRITE)


def linked_system(svc: Services, actor: Actor, view: CustomerView, link: LinkView,
                  pulled: PulledDataView | None, can_link: bool) -> None:
    """One linked system's block."""
    iid = link.integration_id
    how = "auto-linked" if link.method == "auto" else f"linked by {link.created_by}"
    head = st.container(horizontal=True, vertical_alignment="center")
    with head:
        st.markdown(f"{present.bold(link.integration_name)} · external id "
                    f"{present.code(link.external_customer_id)} · "
                    f"{present.text(how)} {present.when(link.created_at)}")
        if can_link and link.integration_active:
            st.button("Refresh", key=f"wb.refresh.{iid}", icon=":material/refresh:",
                      on_click=refresh_one, args=(svc, actor, view.id, link))
            show_notes(f"refresh.{iid}")
        if can_link:
            widgets.confirm_button(
                "Unlink", key=f"wb.unlink.{iid}",
                title=f"Unlink from {present.text(link.integration_name)}",
                message=f"Unlink {present.bold(view.name or view.id)} from "
                        f"{present.bold(link.integration_name)} (external id "
                        f"{present.text(link.external_customer_id)})? Its data, and the "
                        "emails and phones it brought, disappear from the profile and "
                        "auto-linking to it is turned off for this profile.",
                confirm_label="Yes, unlink", on_confirm=lambda: unlink_one(svc, actor, view.id,
                                                                           link))
    if not link.integration_active:
        widgets.caption(f"{link.integration_name} is inactive: the link is kept but its data is "
                        "hidden until an admin activates it.")
        return
    pulled_data(iid, pulled)


def pulled_data(iid: int, pulled: PulledDataView | None) -> None:
    """Fetched-at, last error, dropped values, custom attributes and transaction cards."""
    if pulled is None or pulled.fetched_at is None:
        widgets.caption("No data pulled yet" + (f": {pulled.last_error}" if pulled and
                                                 pulled.last_error else "; use Refresh."))
        return
    widgets.caption(f"Fetched {present.when(pulled.fetched_at)}")
    if pulled.last_error:
        widgets.warning(f"The last refresh ({present.when(pulled.last_attempt_at)}) failed: "
                        f"{pulled.last_error}. Showing the data fetched before.")
    for dropped in pulled.dropped:
        widgets.caption(f"Not added to the profile: {dropped.get('kind')} {dropped.get('value')} "
                        f"({dropped.get('reason')})")
    if pulled.custom_attributes:
        widgets.custom_attributes_table(f"wb.attrs.{iid}", pulled.custom_attributes)
    widgets.transaction_cards(f"wb.tx.{iid}", pulled.transactions)


# -- link to external customer ------------------------------------------------------------------


def link_section(svc: Services, actor: Actor, view: CustomerView,
                 known: Sequence[SystemChoice]) -> None:
    """Search In one or all unlinked systems, the prefilled fields, Search, results, Link."""
    st.subheader("Link to external systems")
    widgets.caption("Search the external systems for this profile's record and link it by "
                    "hand; nothing is created here.")
    linked = {link.integration_id for link in view.links}
    active = [i for i in known if i.active]
    options = [ALL_UNLINKED] + [i.name for i in active]
    labels = {i.name: i.name + (" (linked)" if i.id in linked else "") for i in active}
    chosen = st.selectbox("Search In", options, key="wb.search.in",
                          format_func=lambda name: labels.get(name, name))
    ids = None if chosen == ALL_UNLINKED else [i.id for i in active if i.name == chosen]
    try:
        fields = svc.linking.search_fields(actor, ids, view.id)
    except ServiceError as exc:
        widgets.show_error(exc)
        return
    if not fields:
        widgets.info("Nothing to search: " + ("the profile is linked to every active system that "
                     "has search fields." if ids is None else f"{chosen} has no search fields; an "
                     "admin can add them."))
        return
    with st.form("wb.search", border=False):
        values = {}
        for field in fields:
            help_text = "Searched in " + ", ".join(field.integrations)
            with st.container(key=f"wb.search.field.{field.attribute}"):
                values[field.attribute] = st.text_input(
                    field.label, value=field.prefill, key=field_key(view.id, field.attribute),
                    help=help_text)
        submitted = st.form_submit_button("Search", key="wb.search.submit", type="primary",
                                          icon=":material/search:")
    if submitted:
        try:
            outcome = svc.linking.search(actor, view.id, integration_ids=ids, fields=values)
        except ServiceError as exc:
            widgets.show_error(exc)
            return
        st.session_state[SEARCHED] = Searched(view.id, str(chosen), outcome,
                                              next_serial(SEARCH_SERIAL))
    searched: Searched | None = st.session_state.get(SEARCHED)
    if searched is not None and (searched.customer_id, searched.chosen) == (view.id, chosen):
        search_results(svc, actor, view, searched)


def search_problems(svc: Services, actor: Actor, outcome: SearchOutcome) -> None:
    """Every failure named with its error kind and exchange; everything failed: say so. Roles
    that may read the exchange log can open each failing exchange right here."""
    if outcome.all_failed:
        widgets.error(outcome.message, icon=":material/cloud_off:")
    else:
        for failure in outcome.failures:
            exchange = f" (exchange {failure.exchange_id})" if failure.exchange_id else ""
            widgets.warning(f"{failure.integration_name} could not be searched: "
                            f"{failure.error_kind}: {failure.message}{exchange}. The other "
                            f"systems' results are below; try {failure.integration_name} again "
                            "on its own in a moment.", icon=":material/error:")
    for failure in outcome.failures:
        if failure.exchange_id is not None:
            widgets.exchange_link(actor, failure.exchange_id)
    if actor.can(Permission.VIEW_EXCHANGES):
        for failure in outcome.failures:
            if failure.exchange_id is None:
                continue
            label = (f"Exchange {failure.exchange_id}: {failure.integration_name}, "
                     f"{failure.error_kind}")
            with st.expander(present.text(label), key=f"wb.failure.{failure.exchange_id}"):
                try:
                    widgets.exchange_viewer(svc.exchanges.get(actor, failure.exchange_id),
                                            key=f"wb.failure.view.{failure.exchange_id}")
                except ServiceError as exc:
                    widgets.show_error(exc)
    for skipped in outcome.skipped:
        widgets.caption(f"{skipped.integration_name} was not searched: {skipped.reason}.")


def results_frame(outcome: SearchOutcome, customer_id: str) -> pd.DataFrame:
    """The results table: Systems, the search results attributes, and who already holds a
    record (when someone does)."""
    columns = ["Systems"] + [c.label for c in outcome.columns]
    rows = []
    for row in outcome.rows:
        values = {"Systems": ", ".join(row.system_names)}
        values.update({c.label: row.values.get(c.attribute, "") for c in outcome.columns})
        held = [f"{s.integration_name}: {holder}" for s in row.systems
                if (holder := s.held_by_another(customer_id))]
        values["Already linked to"] = "; ".join(held)
        rows.append(values)
    if any(r["Already linked to"] for r in rows):
        columns.append("Already linked to")
    return widgets.dataframe_of(rows, columns)


def selected_row(event: Any) -> int | None:
    """The selected row index of a dataframe selection event (a dict under AppTest)."""
    try:
        rows = event["selection"]["rows"]
    except (KeyError, TypeError):
        return None
    return int(rows[0]) if rows else None


def search_results(svc: Services, actor: Actor, view: CustomerView,
                   searched: Searched) -> None:
    """Failures, the results table with row selection, the system choice and Link."""
    outcome = searched.outcome
    search_problems(svc, actor, outcome)
    if outcome.all_failed:
        return
    if not outcome.rows:
        answered = ", ".join(outcome.answered) or "no system"
        widgets.info(f"No match in {answered}. Try another email, phone or order number.")
        return
    widgets.caption(f"{len(outcome.rows)} result(s) from {', '.join(outcome.answered)}. "
                         "Pick a row, then the system to link.")
    with st.container(key=RESULTS):
        event = st.dataframe(results_frame(outcome, view.id), hide_index=True,
                             key=results_key(searched), on_select="rerun",
                             selection_mode="single-row")
    index = selected_row(event)
    if index is None or index >= len(outcome.rows):
        return
    link_choice(svc, actor, view, outcome.rows[index], system_key(searched, index))


def hit_label(hit: SystemHit, customer_id: str) -> str:
    """A system of a result row, as the system picker shows it."""
    holder = hit.held_by_another(customer_id)
    held = f" · already linked to {holder}" if holder else ""
    return f"{hit.integration_name} · {hit.external_customer_id}{held}"


def link_choice(svc: Services, actor: Actor, view: CustomerView, row: SearchRow,
                key: str) -> None:
    """Choose the system of the picked row (picker keyed ``key``) and link."""
    hits = {hit_label(h, view.id): h for h in row.systems}
    st.selectbox("System to link", list(hits), key=key)
    st.button("Link", key="wb.link.submit", type="primary", icon=":material/link:",
              on_click=link_clicked, args=(svc, actor, view.id, hits, key))
    show_notes("link")


def link_clicked(svc: Services, actor: Actor, customer_id: str, hits: dict[str, SystemHit],
                 key: str) -> None:
    """Callback of Link: link the system chosen in the picker keyed ``key`` and say how it
    went (with the refresh linking made)."""
    hit = hits[str(st.session_state[key])]
    forget_opened()
    try:
        outcome = svc.linking.link(actor, customer_id, hit.integration_id,
                                   hit.external_customer_id)
    except ServiceError as exc:
        note("link", exc)
        return
    forget_search()
    message = f"Linked to {hit.integration_name} (external id {hit.external_customer_id})."
    refresh = outcome.refresh
    if refresh is not None:
        message += " " + " ".join(refresh_lines([refresh]))
    state.after_write(message, "success" if refresh is None or refresh.ok else "warning",
                      state.PROFILE_WRITE)


# -- why (not) linked ------------------------------------------------------------------------------


def why_section(actor: Actor, view: CustomerView, known: Sequence[SystemChoice]) -> None:
    """Per integration, a toggle; once on: the state, the fix and the trail behind it (read
    only then: an expander would run its body, and read every explanation, on every run)."""
    st.subheader("Why (not) linked?")
    if not known:
        widgets.caption("No integrations are configured.")
        return
    for integration in known:
        label = present.text(integration.name) + ("" if integration.active else " (inactive)")
        if st.toggle(label, key=f"wb.why.{integration.id}"):
            with st.container(border=True, key=f"wb.why.{integration.id}.body"):
                explain(actor, view.id, integration.id)


def explain(actor: Actor, customer_id: str, integration_id: int) -> None:
    """Why one profile is (not) linked to one integration."""
    try:
        why = state.explanation(actor, customer_id, integration_id)
    except ServiceError as exc:
        widgets.show_error(exc)
        return
    st.markdown(present.text(why.summary))
    if why.fix:
        widgets.info(why.fix, icon=":material/build:")
    if why.trail:
        rows = [{"When": present.when(t.at),
                 "Step": present.badge_label(t.outcome) if t.outcome else t.entry,
                 "What happened": t.reason, "Trigger": t.trigger, "By": t.actor,
                 "Exchange": t.exchange_id} for t in why.trail]
        st.dataframe(widgets.status_cells(pd.DataFrame(rows), "Step"), hide_index=True,
                     key=f"wb.why.{integration_id}.trail")


# -- the page --------------------------------------------------------------------------------------


def main() -> None:
    """The page: find / create, then the open profile."""
    actor = require(Permission.VIEW_CUSTOMERS, page="workbench")
    svc = state.services()
    st.title("Link workbench")
    if not actor.can(Permission.LINK):
        widgets.caption("Read-only: you can find customers and see what linked systems know; "
                        "linking needs the agent or admin role.")
    wanted = st.query_params.get("customer")
    if wanted and wanted != st.session_state.get(CUSTOMER):
        problem = open_profile(svc, actor, wanted)
        if problem is not None:
            widgets.show_error(problem)
    if actor.can(Permission.EDIT_CUSTOMERS):
        find_col, create_col = st.columns([3, 2])
        with find_col:
            find_section(svc, actor)
        with create_col, st.container(border=True, key="wb.create_box"):
            st.subheader("Create a profile")
            widgets.caption("A new Linker customer; auto-linking runs at once. To connect an "
                            "existing profile to an external system, open it and use Link to "
                            "external systems.")
            create_section(svc, actor)
    else:
        find_section(svc, actor)
    customer_id = st.session_state.get(CUSTOMER)
    if customer_id:
        try:
            known = integrations(actor)
        except ServiceError as exc:
            widgets.show_error(exc)
            known = []
        profile_section(svc, actor, customer_id, known)
    st.session_state.pop(NOTES, None)  # what no place showed belonged to this click only


if __name__ == "__main__":
    main()
