"""The reliability tests reuse the integration tests' database fixtures (SQLite, and
PostgreSQL when LINKER_TEST_POSTGRES_URL is set)."""

from tests.integration.conftest import ctx, db, db_url, settings, world

__all__ = ["ctx", "db", "db_url", "settings", "world"]
