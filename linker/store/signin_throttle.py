"""Sign-in throttle rows in the database: one per account or client key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from linker.store.models import SignInThrottle


def locked_row(s: Session, key: str, now: datetime) -> SignInThrottle:
    """The key's row, created when missing, locked for this transaction (FOR UPDATE on
    PostgreSQL; SQLite write transactions are exclusive anyway)."""
    insert = sqlite_insert if s.get_bind().dialect.name == "sqlite" else postgresql_insert
    s.execute(insert(SignInThrottle).values(
        key=key, failures=0, last_failure_at=now, locked_until=None).on_conflict_do_nothing())
    return s.execute(select(SignInThrottle).where(SignInThrottle.key == key)
                     .with_for_update().execution_options(populate_existing=True)
                     ).scalar_one()


def row_of(s: Session, key: str) -> SignInThrottle | None:
    """The key's row, or None when it has none."""
    return s.get(SignInThrottle, key)


def delete_row(s: Session, row: SignInThrottle) -> None:
    """Remove a key's row (its count starts again from zero)."""
    s.delete(row)
