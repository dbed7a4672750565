"""The audit log page's reads: every audit event, newest first, filtered at the database and
paginated by keyset (``id < before``), with a CSV export of the filtered log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from linker.core.permissions import Actor, Permission
from linker.csvexport import csv_text
from linker.services.context import ServiceContext
from linker.services.reports import AuditEntry
from linker.store.models import AuditEvent, Integration

PAGE_SIZE_MAX = 500
EXPORT_MAX = 100_000
AUDIT_COLUMNS = ("id", "at", "actor", "role", "action", "entity_type", "entity_id", "before",
                 "after")


AuditCursor = tuple[datetime, int]
"""A keyset position: an event's time and id (events are ordered by time, then id)."""


@dataclass(frozen=True)
class AuditFilter:
    """Which events to show; every field left empty matches everything.

    ``integration_id`` matches events on the integration itself and events whose before or
    after names it (links, suppressions, refreshes); ``customer_id`` matches events on that
    profile; ``since`` is inclusive, ``until`` exclusive.
    """

    actor: str | None = None
    action: str | None = None
    integration_id: int | None = None
    customer_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditPage:
    """One page, newest first; ``next_before`` is the cursor of the next (older) page: the
    time and id of this page's last event."""

    entries: list[AuditEntry]
    next_before: AuditCursor | None


@dataclass(frozen=True)
class AuditChoices:
    """The actors and actions that occur in the log (for filter pickers)."""

    actors: list[str]
    actions: list[str]


class AuditLogService:
    """The audit log for support leads and admins."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def page(self, actor: Actor, filters: AuditFilter = AuditFilter(), *,
             before: AuditCursor | None = None, limit: int = 50) -> AuditPage:
        """Up to ``limit`` events matching ``filters``, newest first (by time, then id),
        after the cursor ``before``."""
        actor.require(Permission.VIEW_AUDIT, "view the audit log")
        limit = max(1, min(limit, PAGE_SIZE_MAX))
        with self.ctx.db.session(readonly=True) as s:
            query = self._filtered(s, filters)
            if before is not None:
                at, event_id = before
                query = query.where(or_(AuditEvent.at < at,
                                        and_(AuditEvent.at == at, AuditEvent.id < event_id)))
            events = s.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                               .limit(limit + 1)).all()
            entries = [AuditEntry(e.id, e.at, e.actor, e.role, e.action, e.entity_type,
                                  e.entity_id, e.before, e.after) for e in events[:limit]]
        more = len(events) > limit
        last = entries[-1] if more and entries else None
        return AuditPage(entries, (last.at, last.id) if last else None)

    def choices(self, actor: Actor) -> AuditChoices:
        """Every actor and action in the log, sorted."""
        actor.require(Permission.VIEW_AUDIT, "view the audit log")
        with self.ctx.db.session(readonly=True) as s:
            actors = s.scalars(select(AuditEvent.actor).distinct().order_by(AuditEvent.actor))
            actions = s.scalars(select(AuditEvent.action).distinct()
                                .order_by(AuditEvent.action))
            return AuditChoices([str(a) for a in actors], [str(a) for a in actions])

    def export_csv(self, actor: Actor, filters: AuditFilter = AuditFilter()) -> str:
        """The filtered log (newest first, up to ``EXPORT_MAX`` events) as CSV, before/after as
        JSON, formula cells neutralised."""
        return csv_text(AUDIT_COLUMNS, self._rows(actor, filters))

    def _rows(self, actor: Actor, filters: AuditFilter) -> Iterator[tuple[Any, ...]]:
        before, sent = None, 0
        while sent < EXPORT_MAX:
            page = self.page(actor, filters, before=before, limit=PAGE_SIZE_MAX)
            for e in page.entries:
                yield (e.id, e.at.isoformat(), e.actor, e.role, e.action, e.entity_type,
                       e.entity_id, _json(e.before), _json(e.after))
            sent += len(page.entries)
            if page.next_before is None:
                return
            before = page.next_before

    @staticmethod
    def _filtered(s: Session, f: AuditFilter) -> Any:
        query = select(AuditEvent)
        if f.actor:
            query = query.where(AuditEvent.actor == f.actor)
        if f.action:
            query = query.where(AuditEvent.action == f.action)
        if f.customer_id:
            query = query.where(AuditEvent.entity_type == "customer",
                                AuditEvent.entity_id == f.customer_id)
        if f.integration_id is not None:
            name = s.scalar(select(Integration.name).where(Integration.id == f.integration_id))
            mentions = [
                and_(AuditEvent.entity_type == "integration",
                     AuditEvent.entity_id == str(f.integration_id)),
                AuditEvent.after["integration_id"].as_integer() == f.integration_id,
                AuditEvent.before["integration_id"].as_integer() == f.integration_id,
            ]
            if name:
                mentions += [AuditEvent.after["integration"].as_string() == name,
                             AuditEvent.before["integration"].as_string() == name]
            query = query.where(or_(*mentions))
        if f.since:
            query = query.where(AuditEvent.at >= f.since)
        if f.until:
            query = query.where(AuditEvent.at < f.until)
        return query


def _json(value: dict[str, Any] | None) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
