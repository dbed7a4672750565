"""The database: one engine, transactional sessions and migrations to the newest schema.

SQLite (the default, a file under ``LINKER_HOME``) and PostgreSQL (via psycopg 3) behave alike:

- every write session on SQLite starts with ``BEGIN IMMEDIATE`` and waits up to 30 s for the
  write lock, so concurrent writers queue instead of failing with "database is locked";
  WAL journal mode lets readers run beside the writer, and foreign keys are enforced;
- ``upgrade()`` migrates to the newest revision under a lock (the SQLite write lock, a
  PostgreSQL advisory lock), so concurrent upgrades of one database are safe and idempotent.

Keep sessions short: never hold one open across an adaptor call, and never open a second write
session in the same thread while one is open (on SQLite it would wait for the first).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from linker.store.files import ensure_private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
# Any constant identifies Linker's migration lock among PostgreSQL advisory locks.
_PG_MIGRATION_LOCK_ID = 0x4C696E6B  # "Link"
# Execution option marking connections of read-only sessions (plain BEGIN on SQLite).
_READONLY = "linker_readonly"


def normalize_url(url: str | URL) -> URL:
    """The URL with PostgreSQL URLs pointed at psycopg 3 (``postgresql://`` → ``+psycopg``)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def display_url(url: str | URL) -> str:
    """The URL with any password masked, safe to print."""
    return make_url(url).render_as_string(hide_password=True)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code, pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    """The newest migration revision shipped with this version of Linker."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


class Database:
    """One database: an engine, sessions, and migrations; see the module docstring."""

    def __init__(self, url: str | URL) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.engine = _sqlite_engine(self.url) if self.is_sqlite else _server_engine(self.url)
        self._readonly_engine = self.engine.execution_options(**{_READONLY: True})
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._readonly_sessions = sessionmaker(bind=self._readonly_engine,
                                               expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({display_url(self.url)!r})"

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A session that commits when the block succeeds and rolls back when it raises.

        Objects stay usable after commit (``expire_on_commit=False``). ``readonly=True`` is for
        blocks that only read: on SQLite they run beside writers instead of queueing for the
        write lock (they must not write).
        """
        factory = self._readonly_sessions if readonly else self._sessions
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def current_revision(self) -> str | None:
        """The migration revision the database is at (None when it was never migrated)."""
        with self._readonly_engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def upgrade(self) -> str:
        """Migrate the database to the newest revision and return that revision.

        Cheap when already there (one query). Concurrent callers serialise on a lock and the
        later ones find the work done.
        """
        head = head_revision()
        if self.current_revision() == head:
            return head
        with self.engine.begin() as connection:  # BEGIN IMMEDIATE on SQLite: the write lock
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"),
                                   {"id": _PG_MIGRATION_LOCK_ID})
            command.upgrade(alembic_config(connection), "head")
        return head

    def dispose(self) -> None:
        """Close every pooled connection (the Database can still be used afterwards)."""
        self.engine.dispose()


def _server_engine(url: URL) -> Engine:
    return create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        # 0600 before SQLite opens it; its -wal and -shm files take the database's mode
        ensure_private_file(Path(database))
    engine = create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (see _begin_sqlite_transaction), so the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # Safe with WAL (no corruption); only the last commits may be lost on power failure.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so a
    # read-then-write transaction can never fail to upgrade its lock half-way.
    readonly = connection.get_execution_options().get(_READONLY, False)
    connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
