"""Audit events: every change a service makes is written with its before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from linker.core.permissions import Actor
from linker.store.models import AuditEvent, table_of, utcnow


def record_audit(
    session: Session,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the session (committed with the change it describes).

    ``before``/``after`` must never contain secrets: callers pass display views.
    """
    event = AuditEvent(**audit_row(actor, action, entity_type, entity_id, before, after))
    session.add(event)
    return event


def audit_row(
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``audit_events`` row ``record_audit`` adds, as column values (for bulk inserts)."""
    return {"at": utcnow(), "actor": actor.username, "role": actor.role.value,
            "action": action, "entity_type": entity_type, "entity_id": str(entity_id),
            "before": before, "after": after}


def insert_audit_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert many ``audit_row`` rows with one multi-row Core INSERT (nothing when empty)."""
    if rows:
        session.connection().execute(insert(table_of(AuditEvent)), rows)
