"""After the demo's bulk load, PostgreSQL's planner has statistics for the tables it filled
(without them the Coverage reason counts took 2 s on the 2,000-profile demo instead of 50 ms)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from linker.demo_history import seed_history
from linker.services.context import ServiceContext
from tests.integration.test_demo_history import integrations

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def analyzed(ctx: ServiceContext, table: str) -> bool:
    with ctx.db.engine.connect() as connection:
        return bool(connection.scalar(text(
            "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
            "WHERE relname = :table AND schemaname = current_schema()"), {"table": table}))


def test_the_bulk_loaded_tables_are_analyzed_on_postgresql(ctx: ServiceContext) -> None:
    if ctx.db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps no planner statistics unless asked; nothing to refresh")
    integrations(ctx)
    assert not analyzed(ctx, "customers")
    report = seed_history(ctx.db, profiles=200, now=NOW, seed=5)
    assert report.rows["customers"] > 0
    for table in ("customers", "autolink_outcomes", "links", "exchanges", "audit_events"):
        assert analyzed(ctx, table), table
