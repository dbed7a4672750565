"""Procrastinate's job-queue schema (background jobs on PostgreSQL, issue 11).

On PostgreSQL this applies the ``schema.sql`` shipped with the installed procrastinate (its
tables, types and functions, all named ``procrastinate_*``) into the schema the connection's
``search_path`` selects, so per-test schemas each get their own queue. On SQLite it does
nothing: jobs run in the caller's own process there.

The schema is that of procrastinate ``PROCRASTINATE_SCHEMA`` (its newest migration file at the
time). ``tests/unit/test_jobqueue.py`` fails when an upgraded procrastinate ships a newer
migration: then add an alembic migration applying the new files of
``procrastinate/sql/migrations`` on PostgreSQL (procrastinate's documented way of upgrading).

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROCRASTINATE_SCHEMA = "03.04.00_50_post_add_retry_failed_job_procedure"
"""The newest procrastinate migration the applied ``schema.sql`` includes."""


def _schema_sql() -> str:
    from procrastinate.schema import SchemaManager

    return SchemaManager.get_schema()


def upgrade() -> None:
    """Apply procrastinate's schema on PostgreSQL; nothing on SQLite."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # Straight to psycopg with no parameters (sent as is, several statements at once): the
    # SQL holds literal % and : that SQLAlchemy or psycopg would otherwise take for parameters.
    cursor = bind.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_schema_sql())
    finally:
        cursor.close()


def downgrade() -> None:
    """Drop every procrastinate object again (PostgreSQL only)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    sql = _schema_sql()
    for table in ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                  "procrastinate_workers"):
        bind.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
    for name in sorted(set(re.findall(r"CREATE (?:FUNCTION|PROCEDURE) (\w+)\(", sql))):
        bind.exec_driver_sql(f"DROP ROUTINE IF EXISTS {name} CASCADE")
    for name in re.findall(r"CREATE TYPE (\w+)", sql):
        bind.exec_driver_sql(f"DROP TYPE IF EXISTS {name} CASCADE")
