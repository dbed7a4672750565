"""Conformance runs against stored integrations: run the checks, store every exchange and the
report card, list the cards per integration.

    card = ConformanceService(ctx).run(actor, integration_id, known_email="a@b.com")
    card.passed, [(c.name, c.status, c.exchange_id) for c in card.checks]
    ConformanceService(ctx).runs(actor, integration_id)      # newest first
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from linker.conformance import (
    CHECK_TITLES,
    CheckStatus,
    ConformanceOptions,
    ConformanceReport,
    run_checks,
)
from linker.core.permissions import Actor, Permission
from linker.lookup import InvalidTarget
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, NotFound
from linker.services.targets import target_for
from linker.store import conformance as conformance_store
from linker.store import integrations as integrations_store
from linker.store.exchanges import record_exchange
from linker.store.models import ConformanceRun

DEFAULT_RUNS_LISTED = 20


@dataclass(frozen=True)
class StoredCheck:
    """One line of a stored report card; ``exchange_id`` opens the exchange behind it."""

    name: str
    title: str
    status: CheckStatus
    required: bool
    message: str
    exchange_id: int | None


@dataclass(frozen=True)
class ConformanceCard:
    """One stored conformance run."""

    id: int
    integration_id: int | None
    integration_name: str
    url: str
    actor: str
    started_at: datetime
    elapsed_ms: float
    passed: bool
    checks: tuple[StoredCheck, ...]
    p95_ms: float | None = None
    """The p95 latency over the run's calls (None on cards stored before it was kept)."""

    def counts(self) -> dict[str, int]:
        """How many checks passed, warned, failed and were skipped."""
        return {s.value: sum(1 for c in self.checks if c.status is s) for s in CheckStatus}


def card_of(run: ConformanceRun) -> ConformanceCard:
    checks = tuple(StoredCheck(
        name=str(row["name"]), title=str(row.get("title") or CHECK_TITLES.get(row["name"], "")),
        status=CheckStatus(row["status"]), required=bool(row.get("required", True)),
        message=str(row.get("message", "")), exchange_id=row.get("exchange_id"),
    ) for row in run.checks)
    return ConformanceCard(run.id, run.integration_id, run.integration_name, run.url, run.actor,
                           run.started_at, run.elapsed_ms, run.passed, checks, run.p95_ms)


class ConformanceService:
    """Runs and lists conformance checks (developers and admins)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def run(self, actor: Actor, integration_id: int, known_email: str,
            known_phone: str | None = None, *, options: ConformanceOptions | None = None
            ) -> ConformanceCard:
        """Run every check against the integration's adaptor (active or not) and store the
        exchanges (trigger ``conformance``) and the report card.

        ``options`` tunes the run (latency calls, budget); its known email and phone are
        replaced by the arguments. InvalidInput when no known email is given or the
        integration's settings cannot work; NotFound when it does not exist.
        """
        actor.require(Permission.RUN_CONFORMANCE, "run conformance checks")
        if not known_email or "@" not in known_email:
            raise InvalidInput({"known_email": "give the email of a person the adaptor holds, "
                                               "e.g. ada@example.com"})
        with self.ctx.db.session(readonly=True) as s:
            integration = integrations_store.find(s, integration_id)
            if integration is None:
                raise NotFound(f"integration {integration_id} does not exist")
            try:
                target = target_for(integration, self.ctx.secrets)
            except InvalidTarget as exc:
                raise InvalidInput({"settings": str(exc)}) from None
        base = options or ConformanceOptions(known_email=known_email)
        chosen = replace(base, known_email=known_email.strip(),
                         known_phone=(known_phone or "").strip() or None)
        report = run_checks(self.ctx.client, target, chosen)
        return self._store(actor, integration_id, report)

    def _store(self, actor: Actor, integration_id: int, report: ConformanceReport
               ) -> ConformanceCard:
        with self.ctx.db.session() as s:
            ids: dict[int, int] = {}
            for exchange in report.exchanges:
                record = record_exchange(s, exchange, integration_id=integration_id,
                                         customer_id=None, actor=actor.username)
                ids[id(exchange)] = record.id
            rows: list[dict[str, Any]] = [{
                "name": c.name, "title": c.title, "status": c.status.value,
                "required": c.required, "message": c.message,
                "exchange_id": ids.get(id(c.exchange)) if c.exchange is not None else None,
            } for c in report.checks]
            run = ConformanceRun(
                integration_id=integration_id, integration_name=report.exchanges[0].integration
                if report.exchanges else "", url=report.url, actor=actor.username,
                started_at=report.started_at, elapsed_ms=report.elapsed_ms,
                passed=report.passed, checks=rows,
                p95_ms=report.p95_ms if report.exchanges else None)
            return card_of(conformance_store.add_run(s, run))

    def runs(self, actor: Actor, integration_id: int, *, limit: int = DEFAULT_RUNS_LISTED
             ) -> list[ConformanceCard]:
        """The integration's stored report cards, newest first."""
        actor.require(Permission.RUN_CONFORMANCE, "see conformance report cards")
        with self.ctx.db.session(readonly=True) as s:
            found = conformance_store.runs_of(s, integration_id, max(1, limit))
            return [card_of(run) for run in found]

    def get(self, actor: Actor, run_id: int) -> ConformanceCard:
        """One stored report card; NotFound when it does not exist."""
        actor.require(Permission.RUN_CONFORMANCE, "see conformance report cards")
        with self.ctx.db.session(readonly=True) as s:
            run = conformance_store.run_of(s, run_id)
            if run is None:
                raise NotFound(f"conformance run {run_id} does not exist")
            return card_of(run)
