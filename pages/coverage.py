"""Coverage (support lead, admin): how many profiles are linked, per integration auto vs manual,
the daily trend of the linked share, the latest auto-link outcomes, and worklists of profiles
not linked to an integration by reason, a page at a time (keyset at the database), each with its
"why" one click away and a CSV export.

Widget keys (for tests): ``coverage.integration`` (an integration id), ``coverage.reason``
("" = every reason), ``coverage.next`` / ``coverage.first`` (pages), ``coverage.why`` (a
customer id of the page, "" = none), ``coverage.export`` (CSV download).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import present, state
from dashboard.auth import require
from dashboard.widgets import (
    FILTER_WIDTH,
    caption,
    dataframe_of,
    filter_bar,
    info,
    keyset_pager,
    show_error,
)
from linker.core.permissions import Actor, Permission
from linker.services.coverage import REASONS, SharePoint, WorklistPage
from linker.services.errors import PermissionDenied, ServiceError
from linker.services.reports import Coverage

PAGE_SIZE = 50
CURSORS = "coverage.cursors"
"""Session key: the ``after`` cursors of the pages before the one shown (keyset pagination)."""
WORKBENCH = "workbench.py"


def summary(coverage: Coverage) -> None:
    """Totals, links per integration and the latest outcome of every (profile, integration)."""
    a, b, c = st.columns(3)
    a.metric("Profiles", coverage.customers)
    b.metric("Linked to at least one system", coverage.linked)
    c.metric("Linked share", present.percent(coverage.linked_share))
    left, right = st.columns(2)
    with left:
        st.markdown("**Per integration**")
        rows = [{"Integration": i.name, "Linked": i.linked, "Auto": i.auto,
                 "Manual": i.manual, "State": "active" if i.active else "inactive",
                 "Share of profiles": present.percent(i.linked / coverage.customers
                                                      if coverage.customers else None)}
                for i in coverage.integrations]
        st.dataframe(dataframe_of(rows, ["Integration", "Linked", "Auto", "Manual",
                                         "Share of profiles", "State"]),
                     hide_index=True, key="coverage.per_integration")
    with right:
        st.markdown("**Latest auto-link outcome per profile and integration**")
        st.dataframe(dataframe_of([{"Outcome": present.badge_label(o), "Count": n}
                                   for o, n in coverage.outcomes.items()],
                                  ["Outcome", "Count"]),
                     hide_index=True, key="coverage.outcomes")


def trend_chart(points: Sequence[SharePoint]) -> None:
    """The linked share at the end of each day, as a plotly line."""
    figure = go.Figure(go.Scatter(
        x=[p.day for p in points], y=[round(p.share * 100, 2) for p in points],
        mode="lines+markers", customdata=[[p.linked, p.customers] for p in points],
        hovertemplate="%{x}: %{y}% (%{customdata[0]} of %{customdata[1]})<extra></extra>"))
    figure.update_layout(title="Linked share, end of each day (last 30 days)", height=300,
                         yaxis_title="% of profiles", yaxis_range=[0, 100],
                         margin={"l": 10, "r": 10, "t": 40, "b": 10})
    st.plotly_chart(figure, key="coverage.trend", config={"displayModeBar": False})


def _reset_pages() -> None:
    st.session_state[CURSORS] = []
    st.session_state.pop("coverage.why", None)


@st.fragment
def worklist_section(actor: Actor, coverage: Coverage) -> None:
    """Pick an integration and a reason; one page of profiles; the why; the CSV export. A
    fragment: a click here (a page, a filter, a why) reruns only the worklists, not the
    summary and the trend chart above."""
    st.subheader("Worklists: profiles not linked")
    names = {i.integration_id: i.name for i in coverage.integrations}
    if not names:
        st.info("No integration yet: there is nothing to link to.")
        return
    with filter_bar("coverage.filters"):
        integration_id = st.selectbox("Integration", list(names), key="coverage.integration",
                                      format_func=lambda i: names.get(i, str(i)),
                                      on_change=_reset_pages, width=FILTER_WIDTH)
        try:
            counts = state.worklist_counts(actor, integration_id)
        except (ServiceError, PermissionDenied) as exc:
            show_error(exc)
            return
        total = sum(counts.values())
        reason = st.selectbox("Reason", ["", *REASONS], key="coverage.reason",
                              format_func=lambda r: f"Every reason ({total})" if r == ""
                              else f"{REASONS[r]} ({counts.get(r, 0)})",
                              on_change=_reset_pages, width=FILTER_WIDTH)
    cursors: list[str | None] = st.session_state.setdefault(CURSORS, [])
    after = cursors[-1] if cursors else None
    try:
        page = state.worklist(actor, integration_id, reason or None, after, PAGE_SIZE)
    except (ServiceError, PermissionDenied) as exc:
        show_error(exc)
        return
    worklist_table(page)
    keyset_pager(cursors, page.next_after, shown=f"{len(page.rows)} profile(s)",
                 first=("First page", "coverage.first"),
                 following=("Next page", "coverage.next"),
                 on_next=lambda: st.session_state.pop("coverage.why", None))
    why_section(actor, page)
    st.download_button(
        "Download this worklist as CSV", key="coverage.export", mime="text/csv",
        icon=":material/download:", on_click="ignore",
        file_name=f"worklist-{integration_id}-{reason or 'all'}.csv",
        data=lambda: state.services().coverage.export_csv(actor, integration_id,
                                                          reason or None))


def worklist_table(page: WorklistPage) -> None:
    """The rows of one worklist page, with a link to each profile in the workbench."""
    if not page.rows:
        st.info("No profile in this worklist.")
        return
    rows = [{"Customer": r.customer_id, "Name": r.name, "Email": r.email,
             "Reason": present.badge_label(r.reason), "Latest attempt": present.when(
                 r.attempted_at), "What happened": r.detail, "Exchange": r.exchange_id,
             "Open": f"{WORKBENCH.removesuffix('.py')}?customer={r.customer_id}"}
            for r in page.rows]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="coverage.worklist",
                 column_config={
                     "Exchange": st.column_config.NumberColumn(format="%d"),
                     "Open": st.column_config.LinkColumn("Open", display_text="workbench"),
                     "What happened": st.column_config.TextColumn(width="large")})


def why_section(actor: Actor, page: WorklistPage) -> None:
    """Why one profile of the page is not linked, and a link to it in the workbench."""
    if not page.rows:
        return
    labels = {r.customer_id: f"{r.name or '(no name)'} ({r.customer_id})" for r in page.rows}
    chosen = st.selectbox("Why is this profile not linked?", ["", *labels], key="coverage.why",
                          format_func=lambda c: labels.get(c, "Choose a profile…"))
    if not chosen:
        return
    try:
        why = state.explanation(actor, chosen, page.integration_id)
    except (ServiceError, PermissionDenied) as exc:
        show_error(exc)
        return
    with st.container(border=True, key="coverage.why_card"):
        info(why.summary)
        if why.fix:
            caption(f"What to do: {why.fix}")
        if why.trail:
            st.dataframe(dataframe_of([{
                "Time": present.when(t.at), "Step": t.entry,
                "Outcome": present.badge_label(t.outcome) if t.outcome else "",
                "Reason": t.reason, "Exchange": t.exchange_id, "Status": t.status,
                "Error": t.error_kind or ""} for t in why.trail],
                ["Time", "Step", "Outcome", "Reason", "Exchange", "Status", "Error"]),
                hide_index=True, key="coverage.why_trail")
        st.page_link(Path(__file__).resolve().parent / WORKBENCH,
                     label="Open the profile in the workbench", icon=":material/open_in_new:",
                     query_params={"customer": chosen})


def main() -> None:
    """The page: summary, trend, worklists."""
    actor = require(Permission.VIEW_COVERAGE, page="coverage")
    st.title("Coverage")
    st.caption("How many customer profiles are linked to each system, and which are not "
               "linked yet, and why.")
    try:
        coverage = state.coverage_summary(actor)
        trend = state.coverage_trend(actor, 30)
    except (ServiceError, PermissionDenied) as exc:
        show_error(exc)
        return
    summary(coverage)
    trend_chart(trend)
    worklist_section(actor, coverage)


if __name__ == "__main__":
    main()
