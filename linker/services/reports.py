"""Coverage, health and audit reports, each computed in SQL (no table is loaded into memory)."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    ExchangeRecord,
    Integration,
    Link,
)

OUTCOMES = ("linked", "no_match", "ambiguous", "no_field_match", "conflict", "suppressed",
            "skipped", "error")

# Health thresholds: healthy needs >= 95 % success and p95 under the contract's 5 s guidance.
HEALTHY_SUCCESS_RATE = 0.95
FAILING_SUCCESS_RATE = 0.5
SLOW_P95_MS = 5000.0


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
class LastError:
    """The newest failed exchange of an integration."""

    exchange_id: int
    at: datetime
    kind: str
    message: str


@dataclass(frozen=True)
class IntegrationHealth:
    """An integration's calls over a window: volume, success, latency and status."""

    integration_id: int
    name: str
    active: bool
    exchanges: int
    failures: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    error_kinds: dict[str, int] = field(default_factory=dict)
    last_error: LastError | None = None

    @property
    def status(self) -> str:
        """healthy, degraded, failing or inactive (no calls counts as healthy)."""
        if not self.active:
            return "inactive"
        if self.success_rate is None:
            return "healthy"
        if self.success_rate < FAILING_SUCCESS_RATE:
            return "failing"
        if self.success_rate < HEALTHY_SUCCESS_RATE or (self.p95_ms or 0.0) > SLOW_P95_MS:
            return "degraded"
        return "healthy"


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

    def health(
        self, actor: Actor, window: timedelta = timedelta(hours=24)
    ) -> list[IntegrationHealth]:
        """Per integration over a window: calls, success rate, error kinds, p50/p95, last error."""
        actor.require(Permission.VIEW_REPORTS, "view integration health")
        since = self.ctx.now() - window
        in_window = ExchangeRecord.started_at >= since
        with self.ctx.db.session() as s:
            integrations = s.execute(
                select(Integration.id, Integration.name, Integration.active)
                .order_by(Integration.name)
            ).all()
            totals = {
                int(i): (int(n), int(f))
                for i, n, f in s.execute(
                    select(ExchangeRecord.integration_id, func.count(),
                           func.coalesce(func.sum(case(
                               (ExchangeRecord.error_kind.is_not(None), 1), else_=0)), 0))
                    .where(in_window, ExchangeRecord.integration_id.is_not(None))
                    .group_by(ExchangeRecord.integration_id)
                ).all()
            }
            kinds: dict[int, dict[str, int]] = {}
            for i, kind, n in s.execute(
                select(ExchangeRecord.integration_id, ExchangeRecord.error_kind, func.count())
                .where(in_window, ExchangeRecord.error_kind.is_not(None))
                .group_by(ExchangeRecord.integration_id, ExchangeRecord.error_kind)
            ).all():
                if i is not None:
                    kinds.setdefault(int(i), {})[str(kind)] = int(n)
            percentiles = self._latency_percentiles(s, since)
            last_errors = self._last_errors(s, since)
        report = []
        for integration_id, name, active in integrations:
            n, failures = totals.get(integration_id, (0, 0))
            p50, p95 = percentiles.get(integration_id, (None, None))
            report.append(IntegrationHealth(
                integration_id=integration_id, name=name, active=active, exchanges=n,
                failures=failures, success_rate=(n - failures) / n if n else None,
                p50_ms=p50, p95_ms=p95, error_kinds=kinds.get(integration_id, {}),
                last_error=last_errors.get(integration_id),
            ))
        return report

    @staticmethod
    def _latency_percentiles(s: Session, since: datetime) -> dict[int, tuple[float, float]]:
        """Nearest-rank p50 and p95 of elapsed time per integration, via window functions."""
        ranked = (
            select(
                ExchangeRecord.integration_id.label("iid"),
                ExchangeRecord.elapsed_ms.label("ms"),
                func.row_number().over(partition_by=ExchangeRecord.integration_id,
                                       order_by=ExchangeRecord.elapsed_ms).label("rn"),
                func.count().over(partition_by=ExchangeRecord.integration_id).label("n"),
            )
            .where(ExchangeRecord.started_at >= since, ExchangeRecord.integration_id.is_not(None))
            .subquery()
        )
        result: dict[int, tuple[float, float]] = {}
        for p in (0.50, 0.95):
            # nearest rank: the smallest value whose rank reaches p * n
            target = ranked.c.rn >= ranked.c.n * p
            rows = s.execute(
                select(ranked.c.iid, func.min(ranked.c.ms)).where(target).group_by(ranked.c.iid)
            ).all()
            for iid, ms in rows:
                p50, p95 = result.get(int(iid), (0.0, 0.0))
                result[int(iid)] = (float(ms), p95) if p == 0.50 else (p50, float(ms))
        return result

    @staticmethod
    def _last_errors(s: Session, since: datetime) -> dict[int, LastError]:
        newest = (
            select(func.max(ExchangeRecord.id).label("id"))
            .where(ExchangeRecord.error_kind.is_not(None), ExchangeRecord.started_at >= since)
            .group_by(ExchangeRecord.integration_id)
            .subquery()
        )
        rows = s.execute(
            select(ExchangeRecord.integration_id, ExchangeRecord.id, ExchangeRecord.started_at,
                   ExchangeRecord.error_kind, ExchangeRecord.error_message)
            .join(newest, newest.c.id == ExchangeRecord.id)
        ).all()
        return {int(i): LastError(int(x), at, str(k), str(m or "")) for i, x, at, k, m in rows
                if i is not None}

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
