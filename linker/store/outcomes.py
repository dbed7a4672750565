"""Recorded auto-link outcomes in the database."""

from __future__ import annotations

from sqlalchemy import select
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
