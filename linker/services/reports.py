"""Coverage and audit reports, each computed in SQL by
``linker.store.coverage`` and ``linker.store.audit`` (no table is loaded into memory). The
per-integration health is ``linker.services.health`` (the Health page's tiles)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from linker.core.permissions import Actor, Permission
from linker.services.context import ServiceContext
from linker.store import audit as audit_store
from linker.store import coverage as coverage_store

OUTCOMES = ("linked", "no_match", "ambiguous", "no_field_match", "conflict", "suppressed",
            "skipped", "error")

@dataclass(frozen=True)
class IntegrationCoverage:
    """Links to one integration: all, auto-made and manual."""

    integration_id: int
    name: str
    active: bool
    linked: int
    auto: int
    manual: int


@dataclass(frozen=True)
class Coverage:
    """How many profiles are linked, per integration, and the latest auto-link outcomes."""

    customers: int
    linked: int
    integrations: list[IntegrationCoverage]
    outcomes: dict[str, int]

    @property
    def linked_share(self) -> float:
        """Share of profiles linked to at least one integration (0 when there are none)."""
        return self.linked / self.customers if self.customers else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``linker coverage --json``."""
        return {
            "customers": self.customers,
            "linked": self.linked,
            "integrations": [{"name": i.name, "linked": i.linked, "auto": i.auto,
                              "manual": i.manual} for i in self.integrations],
            "outcomes": dict(self.outcomes),
        }


@dataclass(frozen=True)
class DailyCount:
    """A count for one day (UTC)."""

    day: str
    count: int


@dataclass(frozen=True)
class AuditEntry:
    """One audit event for display."""

    id: int
    at: datetime
    actor: str
    role: str
    action: str
    entity_type: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class ReportService:
    """Read-only reports for support leads, admins and developers."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def coverage(self, actor: Actor) -> Coverage:
        """Profiles, linked profiles, links per integration and latest outcome counts."""
        actor.require(Permission.VIEW_REPORTS, "view coverage")
        with self.ctx.db.session() as s:
            customers = coverage_store.customer_count(s)
            linked = coverage_store.linked_customer_count(s)
            per_integration = coverage_store.links_per_integration(s)
            outcomes = dict.fromkeys(OUTCOMES, 0)
            outcomes.update(coverage_store.latest_outcome_counts(s))
        return Coverage(
            customers=customers,
            linked=linked,
            integrations=[IntegrationCoverage(*row) for row in per_integration],
            outcomes=outcomes,
        )

    def links_per_day(self, actor: Actor, days: int = 30) -> list[DailyCount]:
        """Links created per day over the last ``days`` days (days without links omitted)."""
        actor.require(Permission.VIEW_REPORTS, "view coverage")
        since = self.ctx.now() - timedelta(days=days)
        with self.ctx.db.session() as s:
            rows = coverage_store.links_created_per_day(s, since)
        return [DailyCount(d, c) for d, c in rows]

    def audit_log(
        self,
        actor: Actor,
        *,
        action: str | None = None,
        actor_name: str | None = None,
        entity_type: str | None = None,
        entity_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> list[AuditEntry]:
        """Audit events, newest first, filtered by any of the given fields."""
        actor.require(Permission.VIEW_AUDIT, "view the audit log")
        with self.ctx.db.session() as s:
            events = audit_store.latest_events(
                s, action=action, actor=actor_name, entity_type=entity_type,
                entity_id=entity_id, since=since, until=until, limit=limit)
            return [AuditEntry(e.id, e.at, e.actor, e.role, e.action, e.entity_type, e.entity_id,
                               e.before, e.after) for e in events]
