"""Health reads in the database: one grouped scan of a window's exchanges (calls per
integration, bucket, error kind and whole millisecond) and each integration's newest error."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from linker.store.models import ExchangeRecord, Integration

Cell = tuple[int, int, str | None, int, int]
"""(integration id, bucket index, error kind or None, whole ms, calls)."""
LastError = tuple[int, datetime, str, str]
"""(exchange id, started at, error kind, error message)."""


def integrations_by_name(s: Session) -> list[tuple[int, str, bool]]:
    """(id, name, active) of every integration, by name."""
    rows = s.execute(select(Integration.id, Integration.name, Integration.active)
                     .order_by(Integration.name)).all()
    return [(int(i), str(n), bool(a)) for i, n, a in rows]


def cells(s: Session, since: datetime, start_epoch: int, width: int) -> list[Cell]:
    """Calls per (integration, bucket, error kind or None, whole ms) in one grouped scan
    of the covering index ``ix_exchanges_health``. ``integration_id + 0`` keeps SQLite
    from walking ``ix_exchanges_integration_time`` for the GROUP BY instead of reading
    only the window's range."""
    iid = (ExchangeRecord.integration_id + 0).label("iid")
    bucket = bucket_index(ExchangeRecord.started_at, start_epoch, width).label("b")
    ms = whole_ms(ExchangeRecord.elapsed_ms).label("ms")
    rows = s.execute(
        select(iid, bucket, ExchangeRecord.error_kind, ms, func.count())
        .where(ExchangeRecord.started_at >= since)
        .group_by(iid, bucket, ExchangeRecord.error_kind, ms)).all()
    return [(int(i), int(b), None if k is None else str(k), int(m), int(n))
            for i, b, k, m, n in rows if i is not None]


def last_errors(s: Session, since: datetime) -> dict[int, LastError]:
    """Integration id → its newest failed exchange since ``since``."""
    newest = (select(func.max(ExchangeRecord.id).label("id"))
              .where(ExchangeRecord.started_at >= since,
                     ExchangeRecord.error_kind.is_not(None))
              .group_by(ExchangeRecord.integration_id + 0).subquery())
    rows = s.execute(
        select(ExchangeRecord.integration_id, ExchangeRecord.id, ExchangeRecord.started_at,
               ExchangeRecord.error_kind, ExchangeRecord.error_message)
        .join(newest, newest.c.id == ExchangeRecord.id)).all()
    return {int(i): (int(x), at, str(k), str(m or ""))
            for i, x, at, k, m in rows if i is not None}


# -- SQL functions ----------------------------------------------------------------------------


class bucket_index(FunctionElement[int]):
    """``floor((epoch(column) - start) / width)``: the time bucket of a row, per dialect
    (SQLite through ``julianday``, which is about twice as fast as ``strftime('%s')``)."""

    type = Integer()
    inherit_cache = True


@compiles(bucket_index, "sqlite")
def _bucket_sqlite(element: bucket_index, compiler: Any, **kw: Any) -> str:
    column, start, width = (compiler.process(c, **kw) for c in element.clauses)
    return (f"CAST(((julianday({column}) - 2440587.5) * 86400.0 - {start}) / {width} "
            "AS INTEGER)")


@compiles(bucket_index)
def _bucket_default(element: bucket_index, compiler: Any, **kw: Any) -> str:
    column, start, width = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(FLOOR((EXTRACT(EPOCH FROM {column}) - {start}) / {width}) AS INTEGER)"


class whole_ms(FunctionElement[int]):
    """A latency rounded down to a whole millisecond: the bins of the latency histograms."""

    type = Integer()
    inherit_cache = True


@compiles(whole_ms, "sqlite")
def _whole_ms_sqlite(element: whole_ms, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


@compiles(whole_ms)
def _whole_ms_default(element: whole_ms, compiler: Any, **kw: Any) -> str:
    return f"CAST(FLOOR({compiler.process(element.clauses, **kw)}) AS INTEGER)"
