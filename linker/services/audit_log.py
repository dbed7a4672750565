"""The audit log page's reads: every audit event, newest first, filtered at the database and
paginated by keyset (``id < before``), with a CSV export of the filtered log."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from linker.core.permissions import Actor, Permission
from linker.csvexport import csv_text, pasted_value
from linker.services.context import ServiceContext
from linker.services.reports import AuditEntry
from linker.store import audit as audit_store
from linker.store.audit import AuditCursor, AuditFilter

PAGE_SIZE_MAX = 500
EXPORT_MAX = 100_000
AUDIT_COLUMNS = ("id", "at", "actor", "role", "action", "entity_type", "entity_id", "before",
                 "after")
EVERY_EVENT = AuditFilter()
"""The empty filter: every event."""


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

    def page(self, actor: Actor, filters: AuditFilter = EVERY_EVENT, *,
             before: AuditCursor | None = None, limit: int = 50) -> AuditPage:
        """Up to ``limit`` events matching ``filters``, newest first (by time, then id),
        after the cursor ``before``."""
        actor.require(Permission.VIEW_AUDIT, "view the audit log")
        limit = max(1, min(limit, PAGE_SIZE_MAX))
        if filters.customer_id:  # an id pasted from a CSV export: "'-6QKY…" is "-6QKY…"
            filters = replace(filters, customer_id=pasted_value(filters.customer_id.strip()))
        with self.ctx.db.session(readonly=True) as s:
            events = audit_store.events_page(s, filters, before, limit + 1)
            entries = [AuditEntry(e.id, e.at, e.actor, e.role, e.action, e.entity_type,
                                  e.entity_id, e.before, e.after) for e in events[:limit]]
        more = len(events) > limit
        last = entries[-1] if more and entries else None
        return AuditPage(entries, (last.at, last.id) if last else None)

    def choices(self, actor: Actor) -> AuditChoices:
        """Every actor and action in the log, sorted."""
        actor.require(Permission.VIEW_AUDIT, "view the audit log")
        with self.ctx.db.session(readonly=True) as s:
            return AuditChoices(audit_store.actors(s), audit_store.actions(s))

    def export_csv(self, actor: Actor, filters: AuditFilter = EVERY_EVENT) -> str:
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


def _json(value: dict[str, Any] | None) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


__all__ = ["AUDIT_COLUMNS", "EVERY_EVENT", "EXPORT_MAX", "PAGE_SIZE_MAX", "AuditChoices",
           "AuditCursor", "AuditFilter", "AuditLogService", "AuditPage"]
