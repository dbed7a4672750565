"""Coverage and audit reports, each computed in SQL (no table is loaded into memory). The
per-integration health is ``linker.services.health`` (the Health page's tiles)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from linker.core.permissions import Actor, Permission
from linker.services.context import ServiceContext
from linker.store.models import (
    AuditEvent,
    AutolinkOutcome,
    Customer,
    Integration,
    Link,
)

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
            customers = s.scalar(select(func.count()).select_from(Customer)) or 0
            linked = s.scalar(select(func.count(func.distinct(Link.customer_id)))) or 0
            per_integration = s.execute(
                select(
                    Integration.id, Integration.name, Integration.active,
                    func.count(Link.id),
                    func.coalesce(func.sum(case((Link.method == "auto", 1), else_=0)), 0),
                    func.coalesce(func.sum(case((Link.method == "manual", 1), else_=0)), 0),
                )
                .outerjoin(Link, Link.integration_id == Integration.id)
                .group_by(Integration.id, Integration.name, Integration.active)
                .order_by(Integration.name)
            ).all()
            outcomes = self._latest_outcome_counts(s)
        return Coverage(
            customers=customers,
            linked=linked,
            integrations=[IntegrationCoverage(int(i), str(n), bool(a), int(c), int(au), int(m))
                          for i, n, a, c, au, m in per_integration],
            outcomes=outcomes,
        )

    @staticmethod
    def _latest_outcome_counts(s: Session) -> dict[str, int]:
        latest = (
            select(func.max(AutolinkOutcome.id).label("id"))
            .group_by(AutolinkOutcome.customer_id, AutolinkOutcome.integration_id)
            .subquery()
        )
        rows = s.execute(
            select(AutolinkOutcome.outcome, func.count())
            .join(latest, latest.c.id == AutolinkOutcome.id)
            .group_by(AutolinkOutcome.outcome)
        ).all()
        counts = dict.fromkeys(OUTCOMES, 0)
        counts.update({str(o): int(c) for o, c in rows})
        return counts

    def links_per_day(self, actor: Actor, days: int = 30) -> list[DailyCount]:
        """Links created per day over the last ``days`` days (days without links omitted)."""
        actor.require(Permission.VIEW_REPORTS, "view coverage")
        since = self.ctx.now() - timedelta(days=days)
        day = func.date(Link.created_at)
        with self.ctx.db.session() as s:
            rows = s.execute(
                select(day, func.count()).where(Link.created_at >= since).group_by(day)
                .order_by(day)
            ).all()
        return [DailyCount(str(d), int(c)) for d, c in rows]

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
        query = select(AuditEvent)
        if action:
            query = query.where(AuditEvent.action == action)
        if actor_name:
            query = query.where(AuditEvent.actor == actor_name)
        if entity_type:
            query = query.where(AuditEvent.entity_type == entity_type)
        if entity_id:
            query = query.where(AuditEvent.entity_id == entity_id)
        if since:
            query = query.where(AuditEvent.at >= since)
        if until:
            query = query.where(AuditEvent.at < until)
        with self.ctx.db.session() as s:
            events = s.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)).all()
            return [AuditEntry(e.id, e.at, e.actor, e.role, e.action, e.entity_type, e.entity_id,
                               e.before, e.after) for e in events]
