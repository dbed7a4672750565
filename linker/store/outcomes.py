"""Recorded auto-link outcomes in the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linker.store.bulk import bulk_insert
from linker.store.models import AutolinkOutcome, Customer, Integration, table_of


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


def recent(s: Session, *, integration_id: int | None, outcome: str | None,
           since: datetime | None, limit: int) -> list[tuple[AutolinkOutcome, str, str]]:
    """The newest ``limit`` outcomes (of one integration / outcome / since a time, each when
    given) with their customer's and integration's names."""
    query = (select(AutolinkOutcome, Customer.name, Integration.name)
             .join(Customer, Customer.id == AutolinkOutcome.customer_id)
             .join(Integration, Integration.id == AutolinkOutcome.integration_id))
    if integration_id is not None:
        query = query.where(AutolinkOutcome.integration_id == integration_id)
    if outcome is not None:
        query = query.where(AutolinkOutcome.outcome == outcome)
    if since is not None:
        query = query.where(AutolinkOutcome.created_at >= since)
    query = query.order_by(AutolinkOutcome.created_at.desc(), AutolinkOutcome.id.desc())
    return [(row, customer, integration)
            for row, customer, integration in s.execute(query.limit(limit))]


def add(s: Session, row: AutolinkOutcome) -> AutolinkOutcome:
    """Add an outcome row to the session, flushed so its ``id`` is set."""
    s.add(row)
    s.flush()
    return row


def insert_many(s: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert outcome rows (column values) in one statement (``bulk_insert``); their ids, in
    order."""
    return bulk_insert(s, table_of(AutolinkOutcome), rows, ids=True)
