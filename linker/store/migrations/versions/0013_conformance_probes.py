"""Scheduled conformance probes: per-integration probe settings and schedule state, and the
p95 latency of each stored report card.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``probe_settings``; add ``conformance_runs.p95_ms`` (NULL for older cards)."""
    with op.batch_alter_table("conformance_runs") as batch:
        batch.add_column(sa.Column("p95_ms", sa.Float(), nullable=True))
    op.create_table(
        "probe_settings",
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("every_minutes", sa.Integer(), nullable=False),
        sa.Column("p95_slo_ms", sa.Float(), nullable=True),
        sa.Column("known_email", sa.String(320), nullable=False),
        sa.Column("known_phone", sa.String(40), nullable=True),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["last_run_id"], ["conformance_runs.id"],
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("integration_id"),
    )


def downgrade() -> None:
    """Drop ``probe_settings`` and the p95 column."""
    op.drop_table("probe_settings")
    with op.batch_alter_table("conformance_runs") as batch:
        batch.drop_column("p95_ms")
