"""The scheduled-probe section of an integration on the Integrations page: admins set the
schedule, the p95 SLO and the person the checks look up; other roles read the settings.

Widget keys (for tests): ``integ.<id>.probe.expander``, the form's ``….enabled``, ``….every``,
``….slo``, ``….email``, ``….phone`` and ``….save``; errors appear under the form, one per
field.
"""

from __future__ import annotations

import streamlit as st

from dashboard import present, state
from dashboard.widgets import caption, error, show_error
from linker.core.permissions import Actor, Permission
from linker.core.probes import (
    MAX_EVERY_MINUTES,
    MAX_SLO_MS,
    MIN_EVERY_MINUTES,
    ProbeSettingsInput,
)
from linker.services.errors import InvalidInput, ServiceError
from linker.services.integrations import IntegrationView
from linker.services.probes import ProbeConfig

FIELD_LABELS = {"every_minutes": "Every (minutes)", "p95_slo_ms": "p95 latency SLO",
                "known_email": "Known email", "known_phone": "Known phone"}


def settings_sentence(config: ProbeConfig) -> str:
    """The settings in one sentence (for roles that may not change them)."""
    if not config.enabled:
        return "No scheduled probe."
    slo = f"p95 SLO {present.millis(config.p95_slo_ms)}" if config.p95_slo_ms else "no p95 SLO"
    return f"Probed every {config.every_minutes} min, {slo}."


def probe_section(actor: Actor, view: IntegrationView) -> None:
    """The expander: the form for admins, the settings sentence for the others."""
    key = f"integ.{view.id}.probe"
    try:
        config = state.probe_settings(actor, view.id)
    except ServiceError as exc:
        show_error(exc)
        return
    label = "Scheduled conformance probe: " + ("on" if config.enabled else "off")
    with st.expander(label, key=key + ".expander"):
        caption("Runs the conformance checks against this adaptor on a schedule and keeps "
                "each report card. The integration is degraded on the Health page when the "
                "latest probe fails a check or its p95 latency is over the SLO.")
        if not actor.can(Permission.MANAGE_INTEGRATIONS):
            caption(settings_sentence(config))
            return
        probe_form(actor, view, config, key)


def probe_form(actor: Actor, view: IntegrationView, config: ProbeConfig, key: str) -> None:
    """The settings form; saved through the probe service, errors named per field."""
    with st.form(key + ".form", border=False):
        enabled = st.toggle("Probe on a schedule", value=config.enabled, key=key + ".enabled")
        a, b = st.columns(2)
        every = a.number_input(FIELD_LABELS["every_minutes"], min_value=MIN_EVERY_MINUTES,
                               max_value=MAX_EVERY_MINUTES, step=1, value=config.every_minutes,
                               key=key + ".every", help="1 to 1440 (a day); 15 by default")
        slo = b.number_input(f"{FIELD_LABELS['p95_slo_ms']} (ms)", min_value=0.0,
                             max_value=MAX_SLO_MS, step=50.0,
                             value=float(config.p95_slo_ms or 0.0), key=key + ".slo",
                             help="Above it the integration is degraded; 0 = no SLO")
        c, d = st.columns(2)
        email = c.text_input(FIELD_LABELS["known_email"], value=config.known_email,
                             key=key + ".email", placeholder="ada@example.com",
                             help="A person the adaptor holds: the checks look them up")
        phone = d.text_input(f"{FIELD_LABELS['known_phone']} (optional)",
                             value=config.known_phone or "", key=key + ".phone",
                             help="Adds the BASIC-by-phone check")
        save = st.form_submit_button("Save probe settings", key=key + ".save")
    if not save:
        return
    given = ProbeSettingsInput(bool(enabled), int(every), float(slo) or None, email,
                               phone or None)
    try:
        state.services().probes.configure(actor, view.id, given)
    except InvalidInput as exc:
        for field, message in exc.fields.items():
            error(f"{FIELD_LABELS.get(field, field)}: {message}")
    except ServiceError as exc:
        show_error(exc)
    else:
        state.reset_widgets(key + ".")
        state.done(f"Saved the probe settings of {present.text(view.name)}.")
