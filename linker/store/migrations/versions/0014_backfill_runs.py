"""Backfills running in a process (whole runs, chunks run in-process, shards): who runs what
since when, how far, and a cancel flag the process polls between batches.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``backfill_runs``."""
    op.create_table(
        "backfill_runs",
        sa.Column("run", sa.String(32), nullable=False),
        sa.Column("integrations", sa.String(400), nullable=False),
        sa.Column("part", sa.String(40), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("cancel_requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run"),
    )


def downgrade() -> None:
    """Drop ``backfill_runs``."""
    op.drop_table("backfill_runs")
