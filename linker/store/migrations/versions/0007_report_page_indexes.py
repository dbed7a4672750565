"""Indexes of the Health, Coverage and Audit log pages.

- ``ix_exchanges_health`` (started_at, integration_id, error_kind, elapsed_ms): the health
  overview's one grouped scan reads a time range of these columns only (covering index; the
  exchange rows themselves are wide).
- ``ix_outcomes_integration_customer`` (integration_id, customer_id, id): the latest auto-link
  outcome of every profile for one integration (coverage worklists).
- ``ix_audit_at_id``, ``ix_audit_actor_at_id``, ``ix_audit_action_at_id``: audit log keyset
  pages on (at, id), newest first, unfiltered or filtered by actor or action.

Revision ID: 0007
Revises: 0010 (re-chained onto main at rebase)
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = {
    "ix_exchanges_health": ("exchanges", ["started_at", "integration_id", "error_kind",
                                          "elapsed_ms"]),
    "ix_outcomes_integration_customer": ("autolink_outcomes",
                                         ["integration_id", "customer_id", "id"]),
    "ix_audit_at_id": ("audit_events", ["at", "id"]),
    "ix_audit_actor_at_id": ("audit_events", ["actor", "at", "id"]),
    "ix_audit_action_at_id": ("audit_events", ["action", "at", "id"]),
}


def upgrade() -> None:
    """Create the report pages' indexes."""
    for name, (table, columns) in _INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    """Drop them again."""
    for name, (table, _) in _INDEXES.items():
        op.drop_index(name, table_name=table)
