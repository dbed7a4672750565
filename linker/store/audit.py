"""Audit events in the database: the filtered, keyset-paginated log and its filter choices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from linker.store.bulk import bulk_insert
from linker.store.models import AuditEvent, Integration, table_of

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


def add_event(s: Session, *, at: datetime, actor: str, role: str, action: str,
              entity_type: str, entity_id: str, before: dict[str, Any] | None,
              after: dict[str, Any] | None) -> AuditEvent:
    """Add an audit event to the session (committed with the change it describes)."""
    event = AuditEvent(at=at, actor=actor, role=role, action=action, entity_type=entity_type,
                       entity_id=entity_id, before=before, after=after)
    s.add(event)
    return event


def insert_rows(s: Session, rows: list[dict[str, Any]]) -> None:
    """Insert many audit rows (column values) in one statement (``bulk_insert``); nothing when
    ``rows`` is empty."""
    bulk_insert(s, table_of(AuditEvent), rows)


def events_page(s: Session, f: AuditFilter, before: AuditCursor | None, limit: int
                ) -> list[AuditEvent]:
    """Up to ``limit`` events matching ``f``, newest first (by time, then id), older than the
    cursor ``before``."""
    query = _filtered(s, f)
    if before is not None:
        at, event_id = before
        query = query.where(or_(AuditEvent.at < at,
                                and_(AuditEvent.at == at, AuditEvent.id < event_id)))
    return list(s.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                          .limit(limit)))


def latest_events(s: Session, *, action: str | None, actor: str | None,
                  entity_type: str | None, entity_id: str | None, since: datetime | None,
                  until: datetime | None, limit: int) -> list[AuditEvent]:
    """Up to ``limit`` events, newest (highest id) first, matching every field given
    (``since`` inclusive, ``until`` exclusive)."""
    query = select(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if entity_type:
        query = query.where(AuditEvent.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditEvent.entity_id == entity_id)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    return list(s.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))


def actors(s: Session) -> list[str]:
    """Every distinct actor in the log, sorted."""
    return [str(a) for a in s.scalars(select(AuditEvent.actor).distinct()
                                      .order_by(AuditEvent.actor))]


def actions(s: Session) -> list[str]:
    """Every distinct action in the log, sorted."""
    return [str(a) for a in s.scalars(select(AuditEvent.action).distinct()
                                      .order_by(AuditEvent.action))]


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
