"""Backfill leases in the database: one row per (integration, shard) a run holds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from linker.store.models import BackfillLease

_PG_LEASE_LOCK = 0x4C6B4266  # "LkBf": serialises lease takers on PostgreSQL


def lock_lease_takers(s: Session) -> None:
    """Serialise lease takers for this transaction (a PostgreSQL advisory lock; call it only
    on PostgreSQL, SQLite write transactions are exclusive already)."""
    s.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LEASE_LOCK})


def delete_expired(s: Session, integration_id: int, now: datetime) -> None:
    """Remove the integration's leases that expired at or before ``now``."""
    s.execute(delete(BackfillLease).where(
        BackfillLease.integration_id == integration_id, BackfillLease.expires_at <= now))


def leases_of(s: Session, integration_id: int) -> list[BackfillLease]:
    """Every lease row of the integration."""
    return list(s.scalars(select(BackfillLease).where(
        BackfillLease.integration_id == integration_id)))


def delete_lease_row(s: Session, row: BackfillLease) -> None:
    """Remove one lease row now (flushed, so a new row for the same part may follow)."""
    s.delete(row)
    s.flush()


def add_lease(s: Session, integration_id: int, shard: str, token: str, holder: str,
              acquired_at: datetime, expires_at: datetime) -> None:
    """Add a lease row."""
    s.add(BackfillLease(integration_id=integration_id, shard=shard, token=token,
                        holder=holder, acquired_at=acquired_at, expires_at=expires_at))


def renew_token(s: Session, token: str, expires_at: datetime) -> int:
    """Set the expiry of every row of ``token``; how many rows it still holds."""
    renewed = s.execute(update(BackfillLease).where(
        BackfillLease.token == token).values(
        expires_at=expires_at).returning(BackfillLease.integration_id))
    return len(renewed.all())


def delete_token(s: Session, token: str) -> None:
    """Remove every row of ``token``."""
    s.execute(delete(BackfillLease).where(BackfillLease.token == token))
