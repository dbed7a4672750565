"""Scheduled conformance probes (issue 11): per-integration settings, running the probes that
are due, and each integration's probe status for the Health page.

    probes = ProbeService(ctx)
    probes.configure(admin, integration_id, ProbeSettingsInput(True, 15, 800.0, "a@b.com"))
    probes.run_due(SYSTEM)          # SQLite / `linker probe run-due`: in this process
    probes.statuses(actor)          # the Health page: last probe, p95 vs SLO, degraded, next due

A probe is a conformance run (``ConformanceService.run``) stored as its report card with the
actor ``PROBE_ACTOR``. Before it runs, ``store.probes.claim`` marks it started with one
conditional UPDATE, so two runners (workers, CLI, dashboard) never probe one integration in
the same interval. On PostgreSQL ``linker worker`` defers one job per due probe every minute
(``linker.services.jobs``); on SQLite a ``ProbeTicker`` runs ``run_due`` every minute in the
dashboard's own process (and ``linker probe run-due [--watch]`` in the CLI's).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from linker.conformance import CheckStatus
from linker.core.permissions import Actor, Permission, Role
from linker.core.probes import (
    DEFAULT_EVERY_MINUTES,
    ProbeSettingsInput,
    ProbeVerdict,
    is_due,
    next_due,
    probe_verdict,
    validate_probe_settings,
)
from linker.services.audit import record_audit
from linker.services.conformance import ConformanceCard, ConformanceService, card_of
from linker.services.context import ServiceContext
from linker.services.errors import NotFound, ServiceError
from linker.store import integrations as integrations_store
from linker.store import probes as probes_store
from linker.store.models import ProbeSetting

_LOG = logging.getLogger(__name__)
TICK_S = 60.0
"""How often an in-process ticker looks for due probes (the workers' schedule: every minute)."""
PROBE_ACTOR = Actor("system, scheduled probe", Role.ADMIN)
"""Who a probe's report card names as its runner."""


@dataclass(frozen=True)
class ProbeConfig:
    """An integration's probe settings as admins edit them (defaults when never saved)."""

    integration_id: int
    enabled: bool
    every_minutes: int
    p95_slo_ms: float | None
    known_email: str
    known_phone: str | None
    updated_at: datetime | None
    updated_by: str


@dataclass(frozen=True)
class ProbeStatus:
    """One integration's probe on the Health page (no known email: every role reads it)."""

    integration_id: int
    name: str
    active: bool
    enabled: bool
    every_minutes: int
    p95_slo_ms: float | None
    last_started_at: datetime | None
    next_due_at: datetime | None
    """None when the probe is off or the integration inactive."""
    card: ConformanceCard | None
    """The latest probe's report card."""
    verdict: ProbeVerdict | None
    """None until a probe has run."""

    @property
    def state(self) -> str:
        """off, waiting (enabled, no card yet), degraded or passing."""
        if not self.enabled:
            return "off"
        if self.verdict is None:
            return "waiting"
        return "degraded" if self.verdict.degraded else "passing"


@dataclass(frozen=True)
class ProbeResult:
    """What one probe run gave: the card and verdict, or why no card could be made."""

    integration_id: int
    card: ConformanceCard | None
    verdict: ProbeVerdict | None
    error: str = ""


def verdict_of(card: ConformanceCard, slo_ms: float | None) -> ProbeVerdict:
    """The degraded rule applied to a stored card."""
    failed = tuple(c.title for c in card.checks if c.required and c.status is CheckStatus.FAIL)
    return probe_verdict(passed=card.passed, failed_checks=failed, p95_ms=card.p95_ms,
                         slo_ms=slo_ms)


def _config(integration_id: int, row: ProbeSetting | None) -> ProbeConfig:
    if row is None:
        return ProbeConfig(integration_id, False, DEFAULT_EVERY_MINUTES, None, "", None,
                           None, "")
    return ProbeConfig(integration_id, row.enabled, row.every_minutes, row.p95_slo_ms,
                       row.known_email, row.known_phone, row.updated_at, row.updated_by)


class ProbeService:
    """Probe settings (admins), probe runs (the scheduler), probe status (every role)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def settings(self, actor: Actor, integration_id: int) -> ProbeConfig:
        """The integration's probe settings (defaults, disabled, when never set)."""
        actor.require(Permission.VIEW_INTEGRATIONS, "see probe settings")
        with self.ctx.db.session(readonly=True) as s:
            if integrations_store.find(s, integration_id) is None:
                raise NotFound(f"integration {integration_id} does not exist")
            return _config(integration_id, probes_store.setting_of(s, integration_id))

    def configure(self, actor: Actor, integration_id: int,
                  given: ProbeSettingsInput) -> ProbeConfig:
        """Save the probe settings (audited). InvalidInput names each bad field; NotFound
        when the integration does not exist."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "change probe settings")
        settings = validate_probe_settings(given)
        with self.ctx.db.session() as s:
            if integrations_store.find(s, integration_id) is None:
                raise NotFound(f"integration {integration_id} does not exist")
            before = _config(integration_id, probes_store.setting_of(s, integration_id))
            row = probes_store.save_setting(s, integration_id, settings, by=actor.username,
                                            now=self.ctx.now())
            after = _config(integration_id, row)
            shown = ("enabled", "every_minutes", "p95_slo_ms", "known_email", "known_phone")
            record_audit(s, actor, "probe.configure", "integration", integration_id,
                         {k: getattr(before, k) for k in shown},
                         {k: getattr(after, k) for k in shown})
            return after

    def statuses(self, actor: Actor) -> list[ProbeStatus]:
        """Every integration's probe: last probe, verdict, next due (by name)."""
        actor.require(Permission.VIEW_HEALTH, "see probe status")
        now = self.ctx.now()
        with self.ctx.db.session(readonly=True) as s:
            found = probes_store.rows(s)
            result = []
            for row in found:
                config = _config(row.integration_id, row.setting)
                card = card_of(row.last_run) if row.last_run is not None else None
                last = row.setting.last_started_at if row.setting else None
                scheduled = config.enabled and row.active
                result.append(ProbeStatus(
                    row.integration_id, row.name, row.active, config.enabled,
                    config.every_minutes, config.p95_slo_ms, last,
                    next_due(config.every_minutes, last, now) if scheduled else None,
                    card, verdict_of(card, config.p95_slo_ms) if card else None))
            return result

    def due(self, actor: Actor) -> list[int]:
        """Ids of the active integrations whose enabled probe is due now."""
        actor.require(Permission.RUN_CONFORMANCE, "run conformance probes")
        now = self.ctx.now()
        with self.ctx.db.session(readonly=True) as s:
            return [row.integration_id for row in probes_store.enabled_of_active(s)
                    if is_due(row.every_minutes, row.last_started_at, now)]

    def run_probe(self, actor: Actor, integration_id: int, *,
                  force: bool = False) -> ProbeResult | None:
        """Claim and run the integration's probe if it is due (any time with ``force``, as
        long as it is enabled); None when another runner has it or it is not due. Adaptor
        trouble is a failed card; settings that cannot work give a result with ``error``."""
        actor.require(Permission.RUN_CONFORMANCE, "run conformance probes")
        with self.ctx.db.session() as s:
            if not probes_store.claim(s, integration_id, self.ctx.now(), force=force):
                return None
            row = probes_store.setting_of(s, integration_id)
            assert row is not None  # claimed, so it exists
            email, phone, slo = row.known_email, row.known_phone, row.p95_slo_ms
        try:
            card = ConformanceService(self.ctx).run(PROBE_ACTOR, integration_id, email, phone)
        except ServiceError as exc:
            _LOG.warning("probe of integration %s not run: %s", integration_id, exc)
            return ProbeResult(integration_id, None, None, str(exc))
        with self.ctx.db.session() as s:
            probes_store.set_last_run(s, integration_id, card.id)
        return ProbeResult(integration_id, card, verdict_of(card, slo))

    def run_due(self, actor: Actor) -> list[ProbeResult]:
        """Run every due probe here, one after another (SQLite, or `linker probe run-due`)."""
        results = []
        for integration_id in self.due(actor):
            result = self.run_probe(actor, integration_id)
            if result is not None:
                results.append(result)
        return results


class ProbeTicker:
    """Runs ``run_due`` every ``interval_s`` seconds in a daemon thread until ``stop()`` (the
    first look after one interval). A tick that fails is logged and the next one tries
    again."""

    def __init__(self, service: ProbeService, interval_s: float = TICK_S) -> None:
        self.service = service
        self.interval_s = interval_s
        self.ticks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="linker-probes", daemon=True)

    def start(self) -> ProbeTicker:
        """Start the thread; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the probe in flight (waiting up to ``timeout_s``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                for result in self.service.run_due(PROBE_ACTOR):
                    _LOG.info("probe of integration %s: %s", result.integration_id,
                              result.verdict.reason if result.verdict else result.error)
            except Exception:  # the database went away, say: logged, retried next tick
                _LOG.exception("looking for due probes failed; trying again in %.0f s",
                               self.interval_s)
            self.ticks += 1
