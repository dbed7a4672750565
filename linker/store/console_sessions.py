"""Reload-proof console sessions in the database, keyed by the token's SHA-256."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from linker.store.models import ConsoleSession


def add_session(s: Session, token_hash: str, username: str, created_at: datetime,
                expires_at: datetime) -> None:
    """Add a session for ``username`` under ``token_hash``."""
    s.add(ConsoleSession(token_hash=token_hash, username=username, created_at=created_at,
                         expires_at=expires_at))


def session_of(s: Session, token_hash: str) -> ConsoleSession | None:
    """The session stored under ``token_hash``, or None."""
    return s.get(ConsoleSession, token_hash)


def revoke_session(s: Session, token_hash: str, at: datetime) -> None:
    """Mark the session under ``token_hash`` revoked at ``at`` (once; unknown hashes ignored)."""
    s.execute(update(ConsoleSession)
              .where(ConsoleSession.token_hash == token_hash,
                     ConsoleSession.revoked_at.is_(None))
              .values(revoked_at=at))
