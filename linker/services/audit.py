"""Audit events: every change a service makes is written with its before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from linker.core.permissions import Actor
from linker.store import audit as audit_store
from linker.store.models import AuditEvent, utcnow


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
    return audit_store.add_event(session, **audit_row(actor, action, entity_type, entity_id,
                                                      before, after))


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
    """Insert many ``audit_row`` rows with one multi-row INSERT (nothing when empty)."""
    audit_store.insert_rows(session, rows)
