"""Recorded auto-link outcomes in the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linker.store.models import AutolinkOutcome


def pair_outcomes(s: Session, customer_id: str, integration_id: int, limit: int
                  ) -> list[AutolinkOutcome]:
    """The newest ``limit`` auto-link outcomes of one (profile, integration) pair."""
    return list(s.scalars(
        select(AutolinkOutcome)
        .where(AutolinkOutcome.customer_id == customer_id,
               AutolinkOutcome.integration_id == integration_id)
        .order_by(AutolinkOutcome.created_at.desc(), AutolinkOutcome.id.desc())
        .limit(limit)))


def counts(s: Session, since: datetime | None = None) -> list[tuple[int, str, int]]:
    """(integration id, outcome, attempts) of every outcome recorded since ``since`` (all time
    when None), counted in SQL."""
    query = (select(AutolinkOutcome.integration_id, AutolinkOutcome.outcome, func.count())
             .group_by(AutolinkOutcome.integration_id, AutolinkOutcome.outcome))
    if since is not None:
        query = query.where(AutolinkOutcome.created_at >= since)
    return [(int(i), str(o), int(n)) for i, o, n in s.execute(query)]
