"""Health overview (every role; the landing page): one tile per integration with status,
success rate, p50/p95 latency, calls and the last error over a window; charts of latency over
time and errors by kind per integration. The tiles refresh themselves every ``REFRESH_S``
seconds and the charts every ``CHARTS_REFRESH_S`` seconds, each in its own fragment
(``st.fragment(run_every=…)``), without reloading the page.

Each tile also shows the integration's scheduled conformance probe (last probe, p95 against
its SLO, degraded and why, next due) and, for roles that may read report cards, a link to the
latest card in the debugger (``?run=<id>``).

Widget keys (for tests): ``health.window`` (``1h``, ``24h``, ``7d``); tiles
``health.tile.<id>`` holding ``health.probe.<id>``; charts ``health.latency_chart`` and
``health.errors_chart``.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard import present, state
from dashboard.auth import require
from dashboard.widgets import DEBUGGER_PAGE, caption, show_error, status_badge
from linker.core.permissions import Actor, Permission
from linker.services.errors import PermissionDenied, ServiceError
from linker.services.health import WINDOWS, HealthOverview, HealthTile, thresholds_sentence
from linker.services.probes import ProbeStatus

REFRESH_S = 5
"""Seconds between two refreshes of the tiles."""
CHARTS_REFRESH_S = 30
"""Seconds between two refreshes of the charts (the read cache's lifetime, too)."""
TILES_PER_ROW = 3
ERROR_COLORS = ("#ff4b4b", "#ff8c00", "#803df5", "#f2c300", "#1c83e1", "#a3a8b8", "#21c354")


def probe_part(actor: Actor, probe: ProbeStatus) -> None:
    """The tile's probe line: its state badge, the figures and why, the report card link."""
    with st.container(key=f"health.probe.{probe.integration_id}"):
        head = st.container(horizontal=True, vertical_alignment="center")
        with head:
            st.markdown("Scheduled probe")
            status_badge(probe.state)
        caption(present.probe_line(probe))
        if probe.card is not None and actor.can(Permission.RUN_CONFORMANCE):
            st.page_link(str(DEBUGGER_PAGE), label=f"Open report card {probe.card.id}",
                         icon=":material/fact_check:", query_params={"run": str(probe.card.id)})


def tile(t: HealthTile, actor: Actor, probe: ProbeStatus | None = None) -> None:
    """One integration: name, status badge, four figures, the last error and the probe
    (when one is scheduled or has run)."""
    with st.container(border=True, key=f"health.tile.{t.integration_id}"):
        head = st.container(horizontal=True, vertical_alignment="center")
        with head:
            st.markdown(present.bold(t.name))
            status_badge(t.status)
        # Two figures to a row: four side by side in a third of the page cut them to "1…".
        a, b = st.columns(2)
        a.metric("Success", present.percent(t.success_rate))
        b.metric("p50", present.millis(t.p50_ms))
        c, d = st.columns(2)
        c.metric("p95", present.millis(t.p95_ms))
        d.metric("Calls", t.exchanges)
        if t.last_error is not None:
            e = t.last_error
            caption(present.last_error_line(e.kind, e.at, e.exchange_id, e.message))
        elif t.status == "untested":
            caption("No call in this window yet: the status is unknown until there is traffic.")
        else:
            caption("No error in this window.")
        if probe is not None and (probe.enabled or probe.card is not None):
            probe_part(actor, probe)


def tiles(items: Sequence[HealthTile], actor: Actor,
          probes: dict[int, ProbeStatus] | None = None) -> None:
    """The tiles, ``TILES_PER_ROW`` to a row."""
    found = probes or {}
    for start in range(0, len(items), TILES_PER_ROW):
        columns = st.columns(TILES_PER_ROW)
        for column, item in zip(columns, items[start:start + TILES_PER_ROW], strict=False):
            with column:
                tile(item, actor, found.get(item.integration_id))


def latency_chart(overview: HealthOverview) -> None:
    """p50 and p95 per bucket, one line pair per integration."""
    names = overview.names()
    figure = go.Figure()
    for iid, name in names.items():
        points = [p for p in overview.latency if p.integration_id == iid]
        if not points:
            continue
        label = present.chart_text(name)
        figure.add_trace(go.Scatter(x=[p.start for p in points], y=[p.p95_ms for p in points],
                                    mode="lines+markers", name=f"{label} p95"))
        figure.add_trace(go.Scatter(x=[p.start for p in points], y=[p.p50_ms for p in points],
                                    mode="lines", line={"dash": "dot"}, name=f"{label} p50"))
    figure.update_layout(title=f"Latency per {_bucket_words(overview)}", height=340,
                         yaxis_title="ms", margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         xaxis_range=[overview.since, overview.until])
    st.plotly_chart(figure, key="health.latency_chart", config={"displayModeBar": False})


def errors_chart(overview: HealthOverview) -> None:
    """Failed calls per bucket, stacked by error kind, one row per integration with errors."""
    names = overview.names()
    with_errors = [iid for iid in names if any(e.integration_id == iid for e in overview.errors)]
    if not with_errors:
        st.caption("No failed call in this window.")
        return
    kinds = sorted({e.kind for e in overview.errors})
    figure = make_subplots(rows=len(with_errors), cols=1, shared_xaxes=True,
                           subplot_titles=[present.chart_text(names[i]) for i in with_errors])
    in_legend: set[str] = set()  # each kind once in the legend, whichever row shows it first
    for row, iid in enumerate(with_errors, start=1):
        for index, kind in enumerate(kinds):
            points = [e for e in overview.errors if e.integration_id == iid and e.kind == kind]
            if points:
                figure.add_trace(go.Bar(x=[e.start for e in points],
                                        y=[e.count for e in points], name=kind,
                                        legendgroup=kind, showlegend=kind not in in_legend,
                                        marker_color=ERROR_COLORS[index % len(ERROR_COLORS)]),
                                 row=row, col=1)
                in_legend.add(kind)
    figure.update_layout(barmode="stack", title=f"Errors by kind per {_bucket_words(overview)}",
                         height=160 + 140 * len(with_errors),
                         margin={"l": 10, "r": 10, "t": 60, "b": 10})
    figure.update_xaxes(range=[overview.since, overview.until])
    st.plotly_chart(figure, key="health.errors_chart", config={"displayModeBar": False})


def _bucket_words(overview: HealthOverview) -> str:
    minutes = int(overview.window.bucket.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 60 else f"{minutes // 60} hour(s)"


def overview_or_none(actor: Actor, window: str, *, show: bool) -> HealthOverview | None:
    """The window's overview (the shared 30-second read cache); None when it cannot be read
    (the error shown when ``show``: by the tiles, not a second time by the charts)."""
    try:
        return state.health_overview(actor, window)
    except (ServiceError, PermissionDenied) as exc:
        if show:
            show_error(exc)
        return None


@st.fragment(run_every=REFRESH_S)
def live(actor: Actor, window: str) -> None:
    """The tiles; re-run by itself every ``REFRESH_S`` seconds."""
    overview = overview_or_none(actor, window, show=True)
    if overview is None:
        return
    try:
        probes = {p.integration_id: p for p in state.probe_statuses(actor)}
    except (ServiceError, PermissionDenied) as exc:
        show_error(exc)
        return
    if not overview.tiles:
        st.info("No integration yet: an admin adds them on the Integrations page.")
        return
    st.caption(f"{overview.window.label}: {present.when(overview.since)} to "
               f"{present.when(overview.until)} · tiles refresh every {REFRESH_S} s, charts "
               f"every {CHARTS_REFRESH_S} s")
    tiles(overview.tiles, actor, probes)


@st.fragment(run_every=CHARTS_REFRESH_S)
def live_charts(actor: Actor, window: str) -> None:
    """The two charts; re-run by themselves every ``CHARTS_REFRESH_S`` seconds (two plotly
    figures are most of a tick's bytes: the tiles' ticks leave them alone)."""
    overview = overview_or_none(actor, window, show=False)
    if overview is None or not overview.tiles:
        return
    left, right = st.columns(2)
    with left:
        latency_chart(overview)
    with right:
        errors_chart(overview)


def main() -> None:
    """The page: the window switch, the thresholds, then the live part."""
    actor = require(Permission.VIEW_HEALTH, page="health")
    st.title("Health")
    st.caption(thresholds_sentence())
    window = st.radio("Window", list(WINDOWS), index=1, key="health.window", horizontal=True,
                      format_func=lambda w: WINDOWS[w].label)
    live(actor, window)
    live_charts(actor, window)


if __name__ == "__main__":
    main()
