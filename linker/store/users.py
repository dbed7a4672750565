"""Console accounts in the database: look-ups by username and the admin count."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linker.store.models import User


def user_named(s: Session, username: str) -> User | None:
    """The account with this (already normalised) username, or None."""
    return s.scalar(select(User).where(User.username == username))


def exists(s: Session, username: str) -> bool:
    """True when an account has this (already normalised) username."""
    return s.scalar(select(User.id).where(User.username == username)) is not None


def all_by_name(s: Session) -> list[User]:
    """Every account, by username."""
    return list(s.scalars(select(User).order_by(User.username)))


def role_and_disabled(s: Session, username: str) -> tuple[str, bool] | None:
    """(role, disabled) of the account, from the unique username index alone; None if none."""
    row = s.execute(select(User.role, User.disabled)
                    .where(User.username == username)).one_or_none()
    return None if row is None else (str(row.role), bool(row.disabled))


def other_enabled_admins(s: Session, role: str, user_id: int) -> int:
    """How many enabled accounts other than ``user_id`` hold ``role`` (the admin role)."""
    return int(s.scalar(select(func.count()).select_from(User).where(
        User.role == role, User.disabled.is_(False), User.id != user_id)) or 0)


def add_user(s: Session, user: User) -> User:
    """Add the account (flushed, so a taken username raises IntegrityError here)."""
    s.add(user)
    s.flush()
    return user
