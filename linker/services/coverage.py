"""The coverage page's reads: the summary, a daily trend of the linked share, and worklists of
profiles not linked to an integration, by reason, paginated at the database (keyset on the
customer id) and exportable as CSV."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from linker.core.permissions import Actor, Permission
from linker.csvexport import csv_text
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, NotFound
from linker.services.reports import Coverage, ReportService
from linker.store import coverage as coverage_store
from linker.store import integrations as integrations_store
from linker.store.models import Integration

REASONS: dict[str, str] = {
    "never_tried": "Never tried",
    "no_match": "No match",
    "ambiguous": "Ambiguous",
    "no_field_match": "No field match",
    "conflict": "Conflict",
    "suppressed": "Suppressed",
    "error": "Error",
    "skipped": "Skipped",
    "linked": "Linked before, since unlinked",
}
"""Why a profile is not linked to an integration: a suppression wins, then the latest auto-link
outcome, and no outcome at all is "never tried"."""

PAGE_SIZE_MAX = 500
EXPORT_MAX = 100_000


@dataclass(frozen=True)
class SharePoint:
    """The linked share at the end of one day (UTC)."""

    day: date
    customers: int
    linked: int

    @property
    def share(self) -> float:
        """Linked profiles / all profiles (0 without profiles)."""
        return self.linked / self.customers if self.customers else 0.0


@dataclass(frozen=True)
class WorklistRow:
    """A profile not linked to the integration, with the latest attempt behind its reason."""

    customer_id: str
    name: str
    email: str
    reason: str
    detail: str
    attempted_at: datetime | None
    exchange_id: int | None


@dataclass(frozen=True)
class WorklistPage:
    """One page of a worklist; ``next_after`` is the cursor of the next page (None: last)."""

    integration_id: int
    reason: str | None
    rows: list[WorklistRow]
    next_after: str | None


WORKLIST_COLUMNS = ("customer_id", "name", "email", "reason", "detail", "attempted_at",
                    "exchange_id")


class CoverageService:
    """Coverage for support leads and admins."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def summary(self, actor: Actor) -> Coverage:
        """Profiles, linked profiles, links per integration (auto / manual), latest outcomes."""
        actor.require(Permission.VIEW_COVERAGE, "view coverage")
        return ReportService(self.ctx).coverage(actor)

    def trend(self, actor: Actor, days: int = 30) -> list[SharePoint]:
        """The linked share at the end of each of the last ``days`` days (links that still
        exist, dated by each profile's first link)."""
        actor.require(Permission.VIEW_COVERAGE, "view coverage")
        if not 1 <= days <= 366:
            raise InvalidInput({"days": "the trend covers 1 to 366 days"})
        today = self.ctx.now().date()
        first = today - timedelta(days=days - 1)
        start = datetime(first.year, first.month, first.day, tzinfo=self.ctx.now().tzinfo)
        with self.ctx.db.session(readonly=True) as s:
            customers = coverage_store.customers_created_before(s, start)
            created = coverage_store.customers_created_per_day(s, start)
            linked_total = coverage_store.first_linked_before(s, start)
            linked = coverage_store.first_linked_per_day(s, start)
        points: list[SharePoint] = []
        for offset in range(days):
            day = first + timedelta(days=offset)
            customers += created.get(day.isoformat(), 0)
            linked_total += linked.get(day.isoformat(), 0)
            points.append(SharePoint(day, customers, linked_total))
        return points

    def reason_counts(self, actor: Actor, integration_id: int) -> dict[str, int]:
        """Profiles not linked to the integration, per reason (every reason, zeros included)."""
        actor.require(Permission.VIEW_COVERAGE, "view coverage worklists")
        with self.ctx.db.session(readonly=True) as s:
            self._integration(s, integration_id)
            found = coverage_store.unlinked_reason_counts(s, integration_id)
        counts = dict.fromkeys(REASONS, 0)
        counts.update(found)
        return counts

    def worklist(self, actor: Actor, integration_id: int, reason: str | None = None, *,
                 after: str | None = None, limit: int = 50) -> WorklistPage:
        """Profiles not linked to the integration (with ``reason``: only those), ordered by
        customer id, ``limit`` at a time after the cursor ``after``."""
        actor.require(Permission.VIEW_COVERAGE, "view coverage worklists")
        if reason is not None and reason not in REASONS:
            raise InvalidInput({"reason": f"unknown reason {reason!r}; use one of "
                                          f"{', '.join(REASONS)}"})
        limit = max(1, min(limit, PAGE_SIZE_MAX))
        with self.ctx.db.session(readonly=True) as s:
            self._integration(s, integration_id)
            rows = coverage_store.unlinked_page(s, integration_id, reason, after, limit + 1)
        page = [WorklistRow(str(r.customer_id), str(r.name or ""), str(r.email or ""),
                            str(r.reason), str(r.detail or ""), r.attempted_at,
                            int(r.exchange_id) if r.exchange_id is not None else None)
                for r in rows[:limit]]
        more = len(rows) > limit
        return WorklistPage(integration_id, reason, page,
                            page[-1].customer_id if more and page else None)

    def export_csv(self, actor: Actor, integration_id: int, reason: str | None = None) -> str:
        """The whole worklist (up to ``EXPORT_MAX`` rows) as CSV, formula cells neutralised."""
        return csv_text(WORKLIST_COLUMNS, self._all_rows(actor, integration_id, reason))

    def _all_rows(self, actor: Actor, integration_id: int, reason: str | None
                  ) -> Iterator[tuple[Any, ...]]:
        after, sent = None, 0
        while sent < EXPORT_MAX:
            page = self.worklist(actor, integration_id, reason, after=after,
                                 limit=PAGE_SIZE_MAX)
            for r in page.rows:
                yield (r.customer_id, r.name, r.email, r.reason, r.detail,
                       r.attempted_at.isoformat() if r.attempted_at else "", r.exchange_id)
            sent += len(page.rows)
            if page.next_after is None:
                return
            after = page.next_after

    @staticmethod
    def _integration(s: Session, integration_id: int) -> Integration:
        integration = integrations_store.find(s, integration_id)
        if integration is None:
            raise NotFound(f"integration {integration_id} does not exist; pick one from the list")
        return integration
