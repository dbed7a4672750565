"""Alembic environment for Linker's migrations.

At run time ``Database.upgrade()`` builds the configuration in code and hands over an open
connection (``config.attributes["connection"]``) already holding the migration lock. For
developers, ``alembic -c linker/store/migrations/alembic.ini revision --autogenerate -m ...``
also works: the URL then comes from LINKER_DATABASE_URL / LINKER_HOME like everywhere else.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from linker.store.jobqueue import include_name
from linker.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      compare_type=True, render_as_batch=connection.dialect.name == "sqlite",
                      include_name=include_name)  # procrastinate's tables are not models
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on the configured database."""
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from linker.config import Settings
    from linker.store.database import Database

    database = Database(config.get_main_option("sqlalchemy.url")
                        or Settings.from_env().database_url)
    try:
        with database.engine.begin() as own_connection:
            _run(own_connection)
    finally:
        database.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run them against a database")
run_migrations_online()
