"""Exchange log keyset indexes: every filter's index ends in (started_at, id).

The exchange log is read newest first with keyset pagination on (started_at, id), so a page
is an index range scan whatever the filter, also with a million rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = {
    "ix_exchanges_integration_time": ["integration_id", "started_at"],
    "ix_exchanges_customer": ["customer_id"],
    "ix_exchanges_started": ["started_at"],
}
_NEW = {
    "ix_exchanges_time_id": ["started_at", "id"],
    "ix_exchanges_integration_time_id": ["integration_id", "started_at", "id"],
    "ix_exchanges_customer_time_id": ["customer_id", "started_at", "id"],
    "ix_exchanges_trigger_time_id": ["trigger", "started_at", "id"],
    "ix_exchanges_error_time_id": ["error_kind", "started_at", "id"],
    "ix_exchanges_status_time_id": ["response_status", "started_at", "id"],
}


def upgrade() -> None:
    """Replace the old single-purpose indexes with keyset ones."""
    for name, columns in _NEW.items():
        op.create_index(name, "exchanges", columns)
    for name in _OLD:
        op.drop_index(name, table_name="exchanges")


def downgrade() -> None:
    """Back to the indexes of revision 0001."""
    for name, columns in _OLD.items():
        op.create_index(name, "exchanges", columns)
    for name in _NEW:
        op.drop_index(name, table_name="exchanges")
