"""Reads of the stored exchange log: the filter, offset and keyset pages, counts and batches.

Keyset pages use ``WHERE (started_at, id) < cursor ORDER BY started_at DESC, id DESC LIMIT n``
on the indexes ending in (started_at, id) (migration 0002).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from linker.store.models import ExchangeRecord

KeysetCursor = tuple[datetime, int]
"""A keyset position: an exchange's started_at and id."""


@dataclass(frozen=True)
class ExchangeFilter:
    """Which exchanges to show; every field is optional."""

    integration_id: int | None = None
    integration_name: str | None = None
    trigger: str | None = None
    kind: str | None = None
    error_kind: str | None = None
    """An ErrorKind value, ``"ok"`` for successes, or ``"failed"`` for any failure."""
    status: int | None = None
    customer_id: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def apply_filter(query: Select[Any], f: ExchangeFilter) -> Select[Any]:
    """``query`` restricted to the exchanges ``f`` selects."""
    conditions = []
    if f.integration_id is not None:
        conditions.append(ExchangeRecord.integration_id == f.integration_id)
    if f.integration_name:
        conditions.append(func.lower(ExchangeRecord.integration_name) == f.integration_name.lower())
    if f.trigger:
        conditions.append(ExchangeRecord.trigger == f.trigger)
    if f.kind:
        conditions.append(ExchangeRecord.kind == f.kind)
    if f.error_kind == "ok":
        conditions.append(ExchangeRecord.error_kind.is_(None))
    elif f.error_kind == "failed":
        conditions.append(ExchangeRecord.error_kind.is_not(None))
    elif f.error_kind:
        conditions.append(ExchangeRecord.error_kind == f.error_kind)
    if f.status is not None:
        conditions.append(ExchangeRecord.response_status == f.status)
    if f.customer_id:
        conditions.append(ExchangeRecord.customer_id == f.customer_id)
    if f.correlation_id:
        conditions.append(ExchangeRecord.correlation_id == f.correlation_id.strip())
    if f.since:
        conditions.append(ExchangeRecord.started_at >= f.since)
    if f.until:
        conditions.append(ExchangeRecord.started_at < f.until)
    return query.where(*conditions)


def records_page(s: Session, f: ExchangeFilter, limit: int, offset: int
                 ) -> list[ExchangeRecord]:
    """Matching records, newest id first, ``limit`` from ``offset``."""
    return list(s.scalars(apply_filter(select(ExchangeRecord), f)
                          .order_by(ExchangeRecord.id.desc()).limit(limit).offset(offset)))


def count(s: Session, f: ExchangeFilter) -> int:
    """How many records match ``f``."""
    query = apply_filter(select(ExchangeRecord), f)
    return s.scalar(select(func.count()).select_from(query.subquery())) or 0


def record_of(s: Session, exchange_id: int) -> ExchangeRecord | None:
    """One record, or None (never stored, or pruned)."""
    return s.get(ExchangeRecord, exchange_id)


def records_after_id(s: Session, f: ExchangeFilter, last_id: int, limit: int
                     ) -> list[ExchangeRecord]:
    """Up to ``limit`` matching records with an id above ``last_id``, oldest id first."""
    return list(s.scalars(apply_filter(select(ExchangeRecord), f)
                          .where(ExchangeRecord.id > last_id)
                          .order_by(ExchangeRecord.id).limit(limit)))


ROW_COLUMNS: tuple[Any, ...] = (
    ExchangeRecord.id, ExchangeRecord.started_at, ExchangeRecord.integration_id,
    ExchangeRecord.integration_name, ExchangeRecord.kind, ExchangeRecord.trigger,
    ExchangeRecord.actor, ExchangeRecord.customer_id, ExchangeRecord.correlation_id,
    ExchangeRecord.response_status, ExchangeRecord.error_kind, ExchangeRecord.elapsed_ms,
    ExchangeRecord.result_count, ExchangeRecord.replay_of,
)
"""The summary columns of a log line (no bodies or headers), in this order."""

_NEWEST_FIRST = (ExchangeRecord.started_at.desc(), ExchangeRecord.id.desc())


def row_values_before(s: Session, f: ExchangeFilter, cursor: KeysetCursor | None, limit: int
                      ) -> Sequence[Row[Any]]:
    """Up to ``limit`` matching log lines (``ROW_COLUMNS``), newest first, after ``cursor``."""
    columns: Select[Any] = select(*ROW_COLUMNS)
    return s.execute(_keyset(apply_filter(columns, f), cursor)
                     .order_by(*_NEWEST_FIRST).limit(limit)).all()


def records_before(s: Session, f: ExchangeFilter, cursor: KeysetCursor | None, limit: int
                   ) -> list[ExchangeRecord]:
    """Up to ``limit`` matching records, newest first, after ``cursor``."""
    return list(s.scalars(_keyset(apply_filter(select(ExchangeRecord), f), cursor)
                          .order_by(*_NEWEST_FIRST).limit(limit)))


def _keyset(query: Select[Any], cursor: KeysetCursor | None) -> Select[Any]:
    """Rows strictly after ``cursor`` in newest-first order (older, or same time, lower id)."""
    if cursor is None:
        return query
    started_at, id_ = cursor
    # The redundant ``started_at <= t`` gives both planners an index range bound to seek to.
    return query.where(and_(ExchangeRecord.started_at <= started_at,
                            or_(ExchangeRecord.started_at < started_at,
                                ExchangeRecord.id < id_)))
