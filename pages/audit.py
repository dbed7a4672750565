"""Audit log (support lead, admin): every audit event with actor, time, action, target and
before → after, newest first; filters for actor, action, integration, customer and time; pages
by keyset at the database; CSV export of the filtered log.

Widget keys (for tests): ``audit.actor`` / ``audit.action`` ("" = all), ``audit.integration``
(0 = all), ``audit.customer`` (a customer id), ``audit.window`` (``1h`` … ``all``);
``audit.newest`` / ``audit.older`` (pages); ``audit.export`` (CSV download).
"""

from __future__ import annotations

import streamlit as st

from dashboard import present, state
from dashboard.auth import require
from dashboard.widgets import FILTER_WIDTH, dataframe_of, filter_bar, keyset_pager, show_error
from linker.core.permissions import Actor, Permission
from linker.services.audit_log import AuditCursor, AuditFilter, AuditPage
from linker.services.errors import PermissionDenied, ServiceError

PAGE_SIZE = 50
CURSORS = "audit.cursors"
"""Session key: the ``before`` cursors of the pages newer than the one shown."""
WINDOWS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days",
           "30d": "Last 30 days", "all": "All time"}
COLUMNS = ["Time", "Actor", "Role", "Action", "Target", "Before → after"]


def _reset_pages() -> None:
    st.session_state[CURSORS] = []


def filters(actor: Actor) -> AuditFilter:
    """The filter widgets, read into an ``AuditFilter``."""
    choices = state.audit_choices(actor)
    systems = {s.id: s.name for s in state.systems(actor)}
    with filter_bar("audit.filters"):
        who = st.selectbox("Actor", ["", *choices.actors], key="audit.actor",
                           format_func=lambda x: x or "Everyone", on_change=_reset_pages,
                           width=FILTER_WIDTH)
        action = st.selectbox("Action", ["", *choices.actions], key="audit.action",
                              format_func=lambda x: x or "Every action",
                              on_change=_reset_pages, width=FILTER_WIDTH)
        integration = st.selectbox("Integration", [0, *systems], key="audit.integration",
                                   format_func=lambda i: "Every integration" if i == 0
                                   else systems.get(i, str(i)), on_change=_reset_pages,
                                   width=FILTER_WIDTH)
        customer = st.text_input("Customer id", key="audit.customer", on_change=_reset_pages,
                                 placeholder="empty: every customer", width=FILTER_WIDTH)
        window = st.selectbox("Time", list(WINDOWS), index=4, key="audit.window",
                              format_func=lambda w: WINDOWS[w], on_change=_reset_pages,
                              width=FILTER_WIDTH)
    return AuditFilter(actor=who or None, action=action or None,
                       integration_id=integration or None,
                       customer_id=customer.strip() or None, since=state.since(window))


def events_table(page: AuditPage) -> None:
    """One page of events, newest first."""
    if not page.entries:
        st.info("No audit event matches these filters.")
        return
    rows = [{"Time": present.when(e.at), "Actor": e.actor, "Role": e.role.replace("_", " "),
             "Action": e.action, "Target": f"{e.entity_type} {e.entity_id}",
             "Before → after": present.audit_change(e.before, e.after)}
            for e in page.entries]
    st.dataframe(dataframe_of(rows, COLUMNS), hide_index=True, key="audit.table",
                 column_config={"Before → after": st.column_config.TextColumn(width="large")})


def main() -> None:
    """The page: filters, one page of events, paging, export."""
    actor = require(Permission.VIEW_AUDIT, page="audit")
    st.title("Audit log")
    st.caption("Every change made through Linker: who, when, what, and the values before and "
               "after. Secrets are never recorded.")
    try:
        chosen = filters(actor)
        cursors: list[AuditCursor | None] = st.session_state.setdefault(CURSORS, [])
        page = state.audit_page(actor, chosen, cursors[-1] if cursors else None, PAGE_SIZE)
    except (ServiceError, PermissionDenied) as exc:
        show_error(exc)
        return
    events_table(page)
    keyset_pager(cursors, page.next_before,
                 shown=f"{len(page.entries)} event(s), newest first",
                 first=("Newest", "audit.newest"), following=("Older", "audit.older"))
    st.download_button("Download the filtered log as CSV", key="audit.export", mime="text/csv",
                       icon=":material/download:", file_name="audit-log.csv", on_click="ignore",
                       data=lambda: state.services().audit_log.export_csv(actor, chosen))


if __name__ == "__main__":
    main()
