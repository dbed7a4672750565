"""Initial schema: every table, index and constraint of linker.store.models.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], ondelete=ondelete)


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "customers",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.String(500), nullable=False),
        sa.Column("custom_attributes", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_customers_created_at", "customers", ["created_at"])

    op.create_table(
        "customer_emails",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("original", sa.String(320), nullable=False),
        sa.Column("normalized", sa.String(320), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        _fk("customer_id", "customers.id"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("normalized"),
    )
    op.create_index("ix_customer_emails_customer_id", "customer_emails", ["customer_id"])

    op.create_table(
        "customer_phones",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("original", sa.String(64), nullable=False),
        sa.Column("e164", sa.String(20), nullable=False),
        sa.Column("type", sa.String(10), nullable=False),
        sa.Column("mobile_key", sa.String(20), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        _fk("customer_id", "customers.id"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "e164", name="uq_phone_per_customer"),
        sa.UniqueConstraint("mobile_key"),
    )
    op.create_index("ix_customer_phones_customer_id", "customer_phones", ["customer_id"])
    op.create_index("ix_customer_phones_e164", "customer_phones", ["e164"])

    op.create_table(
        "integrations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_key", sa.String(100), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("password_enc", sa.Text(), nullable=False),
        sa.Column("realm", sa.String(200), nullable=False),
        sa.Column("signing_key_enc", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("search_query_attributes", sa.JSON(), nullable=False),
        sa.Column("search_results_attributes", sa.JSON(), nullable=False),
        sa.Column("autolink_enabled", sa.Boolean(), nullable=False),
        sa.Column("autolink_fields", sa.JSON(), nullable=False),
        sa.Column("overwrite_existing", sa.Boolean(), nullable=False),
        sa.Column("timeout_s", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name_key"),
    )

    op.create_table(
        "links",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("external_customer_id", sa.String(200), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        _timestamp("created_at"),
        _fk("customer_id", "customers.id"),
        _fk("integration_id", "integrations.id"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "integration_id", name="uq_link_customer_integration"),
        sa.UniqueConstraint("integration_id", "external_customer_id", name="uq_link_external_id"),
    )
    op.create_index("ix_links_created_at", "links", ["created_at"])
    op.create_index("ix_links_integration", "links", ["integration_id", "method"])

    op.create_table(
        "pulled_data",
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("address", sa.String(500), nullable=True),
        sa.Column("custom_attributes", sa.JSON(), nullable=False),
        sa.Column("transactions", sa.JSON(), nullable=False),
        sa.Column("dropped", sa.JSON(), nullable=False),
        _timestamp("fetched_at", nullable=True),
        _timestamp("last_attempt_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("exchange_id", sa.Integer(), nullable=True),
        _fk("customer_id", "customers.id"),
        _fk("integration_id", "integrations.id"),
        sa.PrimaryKeyConstraint("customer_id", "integration_id"),
    )

    op.create_table(
        "suppressions",
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        _timestamp("created_at"),
        _fk("customer_id", "customers.id"),
        _fk("integration_id", "integrations.id"),
        sa.PrimaryKeyConstraint("customer_id", "integration_id"),
    )

    op.create_table(
        "exchanges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("integration_name", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("correlation_id", sa.String(40), nullable=False),
        _timestamp("started_at"),
        sa.Column("elapsed_ms", sa.Float(), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("request_headers", sa.JSON(), nullable=False),
        sa.Column("request_body", sa.Text(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.JSON(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("response_size", sa.Integer(), nullable=True),
        sa.Column("body_truncated", sa.Boolean(), nullable=False),
        sa.Column("error_kind", sa.String(20), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("violations", sa.JSON(), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=False),
        sa.Column("replay_of", sa.Integer(), nullable=True),
        _fk("integration_id", "integrations.id", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_exchanges_integration_time", "exchanges",
                    ["integration_id", "started_at"])
    op.create_index("ix_exchanges_customer", "exchanges", ["customer_id"])
    op.create_index("ix_exchanges_correlation", "exchanges", ["correlation_id"])
    op.create_index("ix_exchanges_started", "exchanges", ["started_at"])

    op.create_table(
        "autolink_outcomes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("external_customer_id", sa.String(200), nullable=True),
        sa.Column("candidates", sa.Integer(), nullable=False),
        sa.Column("exchange_id", sa.Integer(), nullable=True),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        _timestamp("created_at"),
        _fk("customer_id", "customers.id"),
        _fk("integration_id", "integrations.id"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outcomes_integration_outcome", "autolink_outcomes",
                    ["integration_id", "outcome"])
    op.create_index("ix_outcomes_customer_integration", "autolink_outcomes",
                    ["customer_id", "integration_id", "created_at"])
    op.create_index("ix_outcomes_created", "autolink_outcomes", ["created_at"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _timestamp("at"),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("entity_type", sa.String(30), nullable=False),
        sa.Column("entity_id", sa.String(100), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_at", "audit_events", ["at"])
    op.create_index("ix_audit_entity", "audit_events", ["entity_type", "entity_id"])

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _timestamp("created_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )

    op.create_table(
        "backfill_progress",
        sa.Column("run_key", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(32), nullable=False),
        _timestamp("done_at"),
        sa.PrimaryKeyConstraint("run_key", "customer_id"),
    )


def downgrade() -> None:
    """Drop every table (children before parents; their indexes go with them)."""
    for table in ("backfill_progress", "users", "audit_events", "autolink_outcomes", "exchanges",
                  "suppressions", "pulled_data", "links", "integrations", "customer_phones",
                  "customer_emails", "customers"):
        op.drop_table(table)
