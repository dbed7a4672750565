"""Adaptor protection: per-integration rate caps and the state that enforces them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two cap columns (NULL: unlimited), ``adaptor_slots`` and ``adaptor_pacing``."""
    with op.batch_alter_table("integrations") as batch:
        batch.add_column(sa.Column("max_concurrent_requests", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_requests_per_second", sa.Float(), nullable=True))
    op.create_table(
        "adaptor_slots",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False, server_default=""),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("integration_id", "slot"),
    )
    op.create_table(
        "adaptor_pacing",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("integration_id"),
    )


def downgrade() -> None:
    """Drop the tables and the columns."""
    op.drop_table("adaptor_pacing")
    op.drop_table("adaptor_slots")
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("max_requests_per_second")
        batch.drop_column("max_concurrent_requests")
