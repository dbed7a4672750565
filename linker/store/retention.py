"""Exchange retention: old exchanges are deleted so the log does not grow without bound."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from linker.config import Settings
from linker.store.models import ExchangeRecord


def retention_age(settings: Settings) -> timedelta:
    """How long exchanges are kept (LINKER_RETENTION_DAYS, default 30 days)."""
    return timedelta(days=settings.exchange_retention_days)


def prune_exchanges(session: Session, older_than: timedelta, now: datetime) -> int:
    """Delete exchanges that started before ``now - older_than``; return how many went.

    Outcomes and pulled data that pointed at a deleted exchange keep their (now dangling)
    ``exchange_id``; readers treat a missing exchange as "pruned".
    """
    if older_than < timedelta(0):
        raise ValueError("the retention age must not be negative")
    cutoff = now - older_than
    result = session.execute(delete(ExchangeRecord).where(ExchangeRecord.started_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
