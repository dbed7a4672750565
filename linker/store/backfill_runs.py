"""Backfill run reads in the database: the profiles a chunk still has to do, the progress rows
of a chunk and the outcomes a run recorded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linker.store.models import AutolinkOutcome, Customer, Link
from linker.store.models import BackfillProgress as ProgressRow


def pending_ids(s: Session, integration_id: int, progress_key: str, first: str | None = None,
                last: str | None = None) -> list[str]:
    """Profiles not linked to the integration and not done under ``progress_key``, in id
    order (only ``first``..``last`` when both are given)."""
    query = select(Customer.id).where(
        ~select(Link.id).where(Link.customer_id == Customer.id,
                               Link.integration_id == integration_id).exists(),
        ~select(ProgressRow.customer_id).where(ProgressRow.customer_id == Customer.id,
                                               ProgressRow.run_key == progress_key).exists())
    if first is not None and last is not None:
        query = query.where(Customer.id >= first, Customer.id <= last)
    return list(s.scalars(query.order_by(Customer.id)))


def progress_done(s: Session, progress_key: str, first: str, last: str, since: datetime
                  ) -> int:
    """How many profiles of ``first``..``last`` were done under ``progress_key`` since
    ``since``."""
    return int(s.scalar(select(func.count()).select_from(ProgressRow).where(
        ProgressRow.run_key == progress_key,
        ProgressRow.customer_id >= first,
        ProgressRow.customer_id <= last,
        ProgressRow.done_at >= since)) or 0)


def outcome_counts(s: Session, integration_ids: Sequence[int], trigger: str, since: datetime
                   ) -> dict[str, int]:
    """Outcome → how many the integrations recorded with ``trigger`` since ``since``."""
    return {str(k): int(v) for k, v in s.execute(
        select(AutolinkOutcome.outcome, func.count()).where(
            AutolinkOutcome.integration_id.in_(integration_ids),
            AutolinkOutcome.trigger == trigger,
            AutolinkOutcome.created_at >= since).group_by(AutolinkOutcome.outcome)).all()}
