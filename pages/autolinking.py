"""Auto-linking (admin): per integration the toggle, the fields and the rule in one sentence;
recent outcomes with filters and a bar chart of counts; the backfill (dry run first, then the
run with a progress bar and Cancel, and its summary). On PostgreSQL with a live worker pool
(``linker worker``) the run is queued as chunk jobs instead of running in this process: its
progress and Cancel read the database, so they survive a dashboard restart. Backfills running
in other processes (a CLI run, a shard) are listed with a Cancel each.

Widget keys (for tests): ``autolink.enabled.<id>``, ``autolink.fields.<id>``; filters
``outcomes.integration`` (0 = all), ``outcomes.outcome`` ("" = all), ``outcomes.window``,
``outcomes.exchange``; ``backfill.integrations``, ``backfill.dry_run``, ``backfill.run``,
``backfill.cancel``, ``backfill.cancel_jobs`` (a run of chunk jobs), ``backfill.cancel_live.<run>``
(a run in another process); the per-profile results
filter ``backfill.results.outcome`` ("" = all).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import state
from dashboard.auth import require
from dashboard.present import BADGE_HEX, badge_color, bold, text, when
from dashboard.widgets import (
    AUTOLINK_FIELD_LABELS,
    FILTER_WIDTH,
    autolink_rule_sentence,
    exchange_link,
    exchange_viewer,
    filter_bar,
    show_error,
    status_badge,
    status_cells,
)
from linker.core.autolink import Outcome
from linker.core.outcomes import outcome_label
from linker.core.permissions import Actor, Permission
from linker.services.backfill import (
    BackfillAttempt,
    BackfillPhase,
    BackfillProgress,
    BackfillSummary,
)
from linker.services.backfill_jobs import RunStatus
from linker.services.errors import ServiceError
from linker.services.integrations import IntegrationView

JOB = "backfill"
DRY_RESULT = "backfill.dry_result"
SEEN_FINISH = "backfill.seen_finish"
WINDOWS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days",
           "30d": "Last 30 days", "all": "All time"}

# -- per integration --------------------------------------------------------------------------


REFILL = "refill"
"""The fill marker of a row whose widgets must show the stored settings again."""


def filled_key(integration_id: int) -> str:
    """The session key noting which version of the settings a row's widgets were filled from
    (see ``dashboard.state.refill_widgets``)."""
    return f"autolink.filled.{integration_id}"


def save_autolink(actor: Actor, integration_id: int, name: str) -> None:
    """on_change of the toggle and the fields: store both, then say what changed."""
    enabled = bool(st.session_state.get(f"autolink.enabled.{integration_id}"))
    fields = list(st.session_state.get(f"autolink.fields.{integration_id}") or [])
    try:
        state.services().integrations.set_autolink(actor, integration_id, enabled, fields)
    except ServiceError as exc:
        message = getattr(exc, "fields", {}).get("autolink_fields") or str(exc)
        state.flash(f"Auto-linking of {name} was not changed: {message}.", "error")
        st.session_state[filled_key(integration_id)] = REFILL  # back to the stored settings
        return
    state.changed()
    chosen = ", ".join(AUTOLINK_FIELD_LABELS[f] for f in fields) or "no field"
    state.flash(f"Auto-linking to {name} is {'on' if enabled else 'off'} ({chosen}).")


def integration_settings(actor: Actor, views: Sequence[IntegrationView]) -> None:
    """One bordered row per integration: toggle, fields, the rule sentence. The toggle and
    fields show the stored settings again whenever they change (another tab, the
    Integrations page, a refused change), not the values the browser held."""
    st.subheader("Per integration")
    if not views:
        st.info("No integration yet: add one on the Integrations page.")
    for view in views:
        state.refill_widgets(filled_key(view.id), view.updated_at, {
            f"autolink.enabled.{view.id}": view.autolink_enabled,
            f"autolink.fields.{view.id}": list(view.autolink_fields)})
        with st.container(border=True, key=f"autolink.row.{view.id}"):
            name, toggle, fields = st.columns([2, 1, 3], vertical_alignment="center")
            with name:
                st.markdown(bold(view.name))
                if not view.active:
                    status_badge("inactive")
            toggle.toggle("Auto-linking", value=view.autolink_enabled,
                          key=f"autolink.enabled.{view.id}", disabled=not view.active,
                          on_change=save_autolink, args=(actor, view.id, view.name))
            fields.multiselect("Fields", list(AUTOLINK_FIELD_LABELS),
                               default=list(view.autolink_fields),
                               format_func=lambda f: AUTOLINK_FIELD_LABELS[f],
                               key=f"autolink.fields.{view.id}", disabled=not view.active,
                               on_change=save_autolink, args=(actor, view.id, view.name))
            st.caption(text(autolink_rule_sentence(view)))


# -- outcomes ---------------------------------------------------------------------------------


def outcomes_section(actor: Actor, views: Sequence[IntegrationView]) -> None:
    """Filters, the outcomes table, the counts chart and the exchange of a chosen outcome."""
    st.subheader("Recent outcomes")
    names = {v.id: v.name for v in views}
    with filter_bar("outcomes.filters"):
        integration_id = st.selectbox("Integration", [0, *names], key="outcomes.integration",
                                      format_func=lambda i: "All integrations" if i == 0
                                      else names.get(i, str(i)), width=FILTER_WIDTH)
        outcome = st.selectbox("Outcome", ["", *(o.value for o in Outcome)],
                               key="outcomes.outcome", width=FILTER_WIDTH,
                               format_func=lambda o: "All outcomes" if o == ""
                               else outcome_label(o))
        window = st.selectbox("Time", list(WINDOWS), index=2, key="outcomes.window",
                              format_func=lambda w: WINDOWS[w], width=FILTER_WIDTH)
    try:
        rows = state.recent_outcomes(actor, integration_id=integration_id or None,
                                     outcome=outcome or None, window=window)
        counts = state.outcome_counts(actor, window)
    except ServiceError as exc:
        show_error(exc)
        return
    if not rows:
        st.info("No auto-link attempt matches these filters.")
    else:
        st.dataframe(status_cells(pd.DataFrame([{
            "Time": when(r.created_at), "Outcome": outcome_label(r.outcome.value),
            "Integration": r.integration_name,
            "Customer": f"{r.customer_name} ({r.customer_id})", "Reason": r.reason,
            "Exchange": r.exchange_id, "Trigger": r.trigger,
        } for r in rows]), "Outcome"), hide_index=True, key="outcomes.table",
            column_config={"Exchange": st.column_config.NumberColumn(format="%d"),
                           "Reason": st.column_config.TextColumn(width="large")})
        st.caption(f"{len(rows)} newest attempt(s) shown.")
    per_outcome = (counts.by_integration.get(integration_id, {}) if integration_id
                   else counts.total)
    outcome_chart(per_outcome)
    labels = {r.exchange_id: f"Exchange {r.exchange_id} · {r.customer_name} · "
              f"{r.integration_name} · {outcome_label(r.outcome.value)}"
              for r in rows if r.exchange_id is not None}
    if labels:
        chosen = st.selectbox("Open the exchange of an outcome", [0, *labels],
                              key="outcomes.exchange",
                              format_func=lambda x: labels.get(x, "Choose an exchange…"))
        if chosen:
            try:
                exchange_viewer(state.exchange(actor, chosen), key="outcomes.viewer")
                exchange_link(actor, chosen)
            except ServiceError as exc:
                show_error(exc)


def outcome_chart(per_outcome: dict[str, int]) -> None:
    """Attempts per outcome as a plotly bar chart (every outcome shown, zeros included)."""
    labels = [o.value for o in Outcome]
    values = [int(per_outcome.get(label, 0)) for label in labels]
    colors = [BADGE_HEX[badge_color(label)] for label in labels]
    figure = go.Figure(go.Bar(x=[outcome_label(label) for label in labels], y=values,
                              marker_color=colors, text=values, textposition="auto"))
    figure.update_layout(title="Attempts per outcome", height=320,
                         margin={"l": 10, "r": 10, "t": 40, "b": 10}, yaxis_title="attempts")
    st.plotly_chart(figure, key="outcomes.chart", config={"displayModeBar": False})


# -- backfill ---------------------------------------------------------------------------------


def start_backfill(actor: Actor, integration_ids: list[int], dry_run: bool) -> None:
    """Start the backfill (or its dry run) as a background job of this database; a real run
    is queued as chunk jobs for the workers when a worker pool exists (never run here)."""
    svc = state.services()
    if not dry_run and svc.backfill_jobs.workers_present():
        st.session_state.pop(DRY_RESULT, None)
        try:
            run = svc.backfill_jobs.start(actor, integration_ids=integration_ids)
        except ServiceError as exc:
            state.flash(f"The backfill was not queued: {exc}", "error")
            return
        state.flash(f"Backfill queued for the workers: {sum(run.chunks.values())} chunk "
                    f"job(s), {run.total} profile(s).")
        return

    def work(report: Callable[[Any], None], cancel: threading.Event) -> BackfillSummary:
        return svc.backfill.run(actor, integration_ids=integration_ids, dry_run=dry_run,
                                progress=report, phases=report, cancel=cancel)

    label = "dry run" if dry_run else "backfill"
    if not dry_run:
        st.session_state.pop(DRY_RESULT, None)  # the next run wants a fresh dry run
    state.start_job(JOB, actor, label, work, meta={"selection": tuple(sorted(integration_ids))})


def summary_view(summary: BackfillSummary) -> None:
    """What a run did (or would do): profiles, throughput, attempts per outcome."""
    counts = summary.counts
    if summary.dry_run:
        st.markdown(
            f"**Dry run of {text(', '.join(summary.integrations))}:** would link "
            f"**{counts.get('linked', 0)}**, ambiguous **{counts.get('ambiguous', 0)}**, "
            f"conflicting **{counts.get('conflict', 0)}**, no match "
            f"{counts.get('no_match', 0)}, no field match {counts.get('no_field_match', 0)}, "
            f"suppressed {counts.get('suppressed', 0)}, skipped {counts.get('skipped', 0)}, "
            f"errors {counts.get('error', 0)}. Nothing was linked.")
    else:
        st.markdown(f"**Backfill of {text(', '.join(summary.integrations))}:** linked "
                    f"**{counts.get('linked', 0)}** of {summary.attempts} attempt(s).")
    m = st.columns(4)
    m[0].metric("Profiles", f"{summary.done} / {summary.total}")
    m[1].metric("Skipped (done before)", summary.resumed)
    m[2].metric("Time", f"{summary.elapsed_s:.1f} s")
    m[3].metric("Profiles / s", f"{summary.profiles_per_second:.1f}")
    st.dataframe(status_cells(pd.DataFrame([{"Outcome": outcome_label(k, dry_run=summary.dry_run),
                                             "Attempts": v}
                                            for k, v in counts.items()]), "Outcome"),
                 hide_index=True, key="backfill.summary_table")
    if summary.cancelled:
        st.warning("Cancelled: the profiles done so far are kept; run it again with the same "
                   "integrations to continue where it stopped.")
    results_view(summary)


def results_view(summary: BackfillSummary) -> None:
    """The attempts one by one (as many as the service listed), filterable by outcome."""
    st.markdown("**Per profile**" + (" (what would happen)" if summary.dry_run else ""))
    if not summary.results:
        st.caption("No attempt is listed." if summary.attempts == 0 else
                   f"None of the {summary.attempts} attempt(s) is listed.")
        return
    dry = summary.dry_run

    def label(value: str) -> str:
        if value == "":
            return "All outcomes"
        return outcome_label(value, dry_run=dry)

    chosen = st.selectbox("Outcome", ["", *(o.value for o in Outcome)],
                          key="backfill.results.outcome",
                          format_func=lambda o: label(o) if o == ""
                          else f"{label(o)} ({summary.counts.get(o, 0)})")
    rows = [r for r in summary.results if not chosen or r.outcome.value == chosen]
    st.dataframe(status_cells(pd.DataFrame([result_row(r, label) for r in rows],
                                           columns=["Outcome", "Customer", "Integration",
                                                    "External id", "Reason", "Exchange"]),
                              "Outcome"),
                 hide_index=True, key="backfill.results_table",
                 column_config={"Exchange": st.column_config.NumberColumn(format="%d"),
                                "Reason": st.column_config.TextColumn(width="large")})
    shown = f"{len(rows)} of the {len(summary.results)} listed attempt(s) shown"
    if summary.results_left_out:
        shown += (f"; {summary.results_left_out} more attempt(s) are not listed (the list is "
                  "bounded and keeps would-be links, ambiguous, conflicting and failed "
                  "attempts first); the counts above cover them all")
    st.caption(shown + ".")


def result_row(result: BackfillAttempt, label: Callable[[str], str]) -> dict[str, Any]:
    """One table row of a listed attempt."""
    reason = result.reason
    if result.refresh_error:
        reason += f" The detailed lookup after linking failed: {result.refresh_error}"
    return {"Outcome": label(result.outcome.value),
            "Customer": f"{result.customer_name} ({result.customer_id})",
            "Integration": result.integration_name,
            "External id": result.external_customer_id or "", "Reason": reason,
            "Exchange": result.exchange_id}


@st.fragment(run_every=1.0)
def backfill_progress() -> None:
    """The running job's progress bar and Cancel, refreshed every second: the step the run
    is at before its first batch (healing, finding the profiles, with its time so far), then
    profiles done of the total."""
    job = state.job(JOB)
    if job is None:
        return
    if job.done:
        st.rerun()  # the whole page shows the summary
    progress = job.progress
    started = f"{job.label.capitalize()} started by {job.started_by} at {when(job.started_at)}"
    if not isinstance(progress, BackfillProgress):
        st.progress(0.0, text=f"{started}: starting…")
    elif progress.phase is BackfillPhase.TRYING:
        linked = progress.counts.get("linked", 0)
        st.progress(progress.fraction, text=f"{started}: {progress.step_text()}, {linked} "
                    "linked so far")
    else:  # a step before the first batch, with the time it has taken (redrawn every second)
        st.progress(progress.fraction, text=f"{started}: {progress.step_text()}")
    if job.cancel.is_set():
        st.caption("Cancelling after the batches in flight…")
    elif st.button("Cancel", key="backfill.cancel", icon=":material/cancel:"):
        job.cancel.set()
        st.rerun()


def queued_run(actor: Actor) -> RunStatus | None:
    """The newest backfill run of chunk jobs (PostgreSQL), or None."""
    jobs = state.services().backfill_jobs
    run = jobs.latest_run(actor)
    return None if run is None else jobs.status(actor, run)


@st.fragment(run_every=1.0)
def queued_progress(actor: Actor, run: str) -> None:
    """A run of chunk jobs: progress from the database and Cancel, refreshed every second."""
    jobs = state.services().backfill_jobs
    try:
        status = jobs.status(actor, run)
    except ServiceError as exc:
        show_error(exc)
        return
    if not status.active:
        st.rerun()  # the whole page shows the controls again
    progress = status.progress()
    running = status.chunks.get("doing", 0)
    st.progress(progress.fraction, text=text(
        f"Backfill of {', '.join(status.integrations)} on the workers: {status.done} of "
        f"{status.total} profiles, {status.counts.get('linked', 0)} linked so far "
        f"({running} chunk job(s) running, {status.chunks.get('todo', 0)} queued)"))
    if st.button("Cancel", key="backfill.cancel_jobs", icon=":material/cancel:"):
        cancel_run(actor, run, "Backfill cancelled: {told} chunk job(s) were told to stop "
                   "(running ones stop after their batch; run it again to resume).")


def cancel_run(actor: Actor, run: str, told: str) -> None:
    """Cancel the run (its chunk jobs, or the process running it), flash ``told`` (its
    ``{told}``: how many were told) and rerun; a refusal is shown instead."""
    try:
        count = state.services().backfill_jobs.cancel(actor, run)
    except ServiceError as exc:
        show_error(exc)
        return
    state.flash(told.replace("{told}", str(count)), "warning")
    st.rerun()


def last_queued_run(status: RunStatus) -> None:
    """One line on the newest finished run of chunk jobs."""
    chunks = ", ".join(f"{k} {v}" for k, v in sorted(status.chunks.items()))
    st.caption(text(f"Last backfill on the workers ({', '.join(status.integrations)}): "
                    f"{status.done} of {status.total} profiles, "
                    f"{status.counts.get('linked', 0)} linked; chunk jobs: {chunks}."))


def runs_elsewhere(actor: Actor) -> None:
    """The backfills running in other processes of the database (a CLI run, a shard), each
    with a Cancel (the run stops after its batches in flight)."""
    jobs = state.services().backfill_jobs
    try:
        live = jobs.running(actor)
    except ServiceError as exc:
        show_error(exc)
        return
    for run in live:
        st.caption(text(
            f"Running elsewhere: {run.what} of {', '.join(run.integrations)}, by {run.holder} "
            f"since {when(run.started_at)}: {run.done} of {run.total} profiles, "
            f"{run.counts.get('linked', 0)} "
            f"{outcome_label('linked', dry_run=run.dry_run)} so far"
            + (" (stopping after its batch)" if run.cancel_requested else "")))
        if not run.cancel_requested and st.button(
                "Cancel it", key=f"backfill.cancel_live.{run.run}", icon=":material/cancel:"):
            cancel_run(actor, run.run, f"Backfill run {run.run} was asked to stop after its "
                       "batch (run it again to resume).")


def backfill_section(actor: Actor, job: state.BackgroundJob | None, job_done: bool) -> None:
    """Choose integrations, dry run, run, progress and summary."""
    st.subheader("Backfill")
    st.caption("Runs auto-linking over the profiles that are not linked yet. Start with a dry "
               "run: it asks the adaptors and reports what would happen, but links nothing.")
    try:
        eligible = {c.id: c.name for c in state.backfill_choices(actor)}
    except ServiceError as exc:
        show_error(exc)
        return
    if not eligible:
        st.info("No active integration has auto-linking on with a field; turn it on above.")
        return
    chosen = st.multiselect("Integrations", list(eligible), default=list(eligible),
                            key="backfill.integrations", format_func=lambda i: eligible[i])
    selection = tuple(sorted(chosen))
    try:
        queued = queued_run(actor)
    except ServiceError as exc:
        show_error(exc)
        queued = None
    if queued is not None and queued.active:
        queued_progress(actor, queued.run)
        return
    if job is not None and not job_done:
        backfill_progress()
        return
    runs_elsewhere(actor)
    if queued is not None:
        last_queued_run(queued)
    if job is not None:
        finished_job(job)
    dry = st.session_state.get(DRY_RESULT)
    dry_ok = dry is not None and dry[0] == selection
    left, right = st.columns(2)
    if left.button("Dry run", key="backfill.dry_run", icon=":material/science:",
                   disabled=not chosen):
        start_backfill(actor, list(selection), dry_run=True)
        st.rerun()
    if right.button("Run backfill", key="backfill.run", type="primary",
                    icon=":material/play_arrow:", disabled=not (chosen and dry_ok),
                    help=None if dry_ok else "Run a dry run of these integrations first"):
        start_backfill(actor, list(selection), dry_run=False)
        st.rerun()
    if dry_ok and dry is not None:
        summary_view(dry[1])


def current_job() -> tuple[state.BackgroundJob | None, bool]:
    """The backfill job and whether it had finished when this run started (one snapshot per
    run, so a job finishing mid-run is noticed by the next run, not half-way through this
    one). The first run after it finished drops the cached reads (it linked profiles and
    recorded outcomes) before any section reads them."""
    job = state.job(JOB)
    done = job is not None and job.done
    if job is not None and done and st.session_state.get(SEEN_FINISH) != job.started_at:
        st.session_state[SEEN_FINISH] = job.started_at
        state.changed()
    return job, done


def finished_job(job: state.BackgroundJob) -> None:
    """Show what a finished job did, and keep a dry run's result."""
    if job.error is not None:
        if isinstance(job.error, ServiceError):
            show_error(job.error)
        else:
            st.error(f"The {job.label} failed: {job.error!r}; see the server log.")
        return
    summary = job.result
    if not isinstance(summary, BackfillSummary):
        return
    if summary.dry_run:
        st.session_state[DRY_RESULT] = (job.meta.get("selection", ()), summary)
        return
    st.success(f"Backfill finished at {when(job.finished_at)}.")
    summary_view(summary)


# -- the page ---------------------------------------------------------------------------------


def main() -> None:
    """The page: per-integration settings, recent outcomes, the backfill."""
    actor = require(Permission.MANAGE_INTEGRATIONS, page="autolinking")
    st.title("Auto-linking")
    st.caption("Linker links a profile by itself only when an integration's answer leaves no "
               "doubt. Every attempt is recorded with its outcome and reason.")
    backfill_job, backfill_done = current_job()
    integrations = state.integration_list(actor)
    integration_settings(actor, integrations)
    outcomes_section(actor, integrations)
    backfill_section(actor, backfill_job, backfill_done)


if __name__ == "__main__":
    main()
