"""Shared fixtures of the integration tests: a fresh, migrated database per test.

Every test using ``db_url`` (or ``settings`` / ``db`` / ``ctx``, which build on it) runs twice:
on a new SQLite file in ``tmp_path``, and on PostgreSQL when ``LINKER_TEST_POSTGRES_URL`` is set
(else that variant is skipped). Each PostgreSQL test gets its own schema, created before and
dropped after; the URL selects it with ``options=-csearch_path=<schema>``, so anything that
opens the URL (other threads, subprocesses) sees the same isolated schema.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from linker.config import Settings
from linker.store.database import Database, normalize_url
from linker.store.secretbox import SecretBox, generate_key

if TYPE_CHECKING:
    from linker.services.context import ServiceContext
    from tests.integration.world import World

POSTGRES_URL_ENV = "LINKER_TEST_POSTGRES_URL"


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A URL on a new, empty schema of the server at ``base_url``; the schema is dropped after."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(base_url), poolclass=NullPool)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(normalize_url(base_url)).update_query_dict(
            {"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            # A test that leaked an open transaction must fail the teardown, not hang it.
            connection.execute(text("SET LOCAL lock_timeout = '30s'"))
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: ``tmp_path/linker.db``, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'linker.db'}"
        return
    base_url = os.environ.get(POSTGRES_URL_ENV, "")
    if not base_url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set, so the PostgreSQL variant is skipped "
                    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    with postgres_schema(base_url) as url:
        yield url


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Settings with home ``tmp_path``, the test database and a fresh secret key."""
    return Settings(home=tmp_path, database_url=db_url,
                    secret_key=generate_key())


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """The test database, migrated to the newest revision."""
    database = Database(settings.database_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def ctx(settings: Settings, db: Database) -> ServiceContext:
    """A ServiceContext on the test database; tests may replace ``ctx.client`` and ``ctx.now``."""
    from linker.services.context import ServiceContext

    return ServiceContext(settings=settings, db=db, secrets=SecretBox.from_settings(settings))


@pytest.fixture
def world(ctx: ServiceContext) -> World:
    """The test context with ``ctx.client`` routed to in-process reference adaptors."""
    from tests.integration.world import new_world

    return new_world(ctx)
