"""The outcome counts of a backfill running in a process, kept in its ``backfill_runs`` row
(renewed after every batch) so status shows them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``backfill_runs.counts`` (outcome → how many, JSON; null until the first batch)."""
    with op.batch_alter_table("backfill_runs") as batch:
        batch.add_column(sa.Column("counts", sa.JSON(), nullable=True))


def downgrade() -> None:
    """Drop ``backfill_runs.counts``."""
    with op.batch_alter_table("backfill_runs") as batch:
        batch.drop_column("counts")
