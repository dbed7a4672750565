"""The health overview: per integration status, success rate, latency and errors over a window,
and time-bucketed latency and error series, all computed in SQL (no row is loaded into Python
except the aggregates)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from linker.services.context import ServiceContext
from linker.services.permissions import Actor, Permission
from linker.store.models import ExchangeRecord, Integration

HEALTHY_SUCCESS_RATE = 0.95
"""At or above this success rate (and p95 within ``SLOW_P95_MS``) an integration is healthy."""
FAILING_SUCCESS_RATE = 0.5
"""Below this success rate an integration is failing."""
SLOW_P95_MS = 5000.0
"""A p95 latency above this (the contract's 5 s guidance) makes an integration degraded."""


@dataclass(frozen=True)
class HealthWindow:
    """A time window of the overview and the width of its chart buckets."""

    key: str
    label: str
    span: timedelta
    bucket: timedelta


WINDOWS: dict[str, HealthWindow] = {w.key: w for w in (
    HealthWindow("1h", "Last hour", timedelta(hours=1), timedelta(minutes=5)),
    HealthWindow("24h", "Last day", timedelta(hours=24), timedelta(hours=1)),
    HealthWindow("7d", "Last week", timedelta(days=7), timedelta(hours=6)),
)}
"""The windows the overview offers, shortest first."""


def health_status(*, active: bool, exchanges: int, success_rate: float | None,
                  p95_ms: float | None) -> str:
    """inactive (switched off), untested (no traffic in the window), failing (success below
    50 %), degraded (success below 95 % or p95 above 5 s) or healthy."""
    if not active:
        return "inactive"
    if exchanges == 0 or success_rate is None:
        return "untested"
    if success_rate < FAILING_SUCCESS_RATE:
        return "failing"
    if success_rate < HEALTHY_SUCCESS_RATE or (p95_ms or 0.0) > SLOW_P95_MS:
        return "degraded"
    return "healthy"


def thresholds_sentence() -> str:
    """The status rules in words, as the page states them."""
    return (f"Healthy: at least {HEALTHY_SUCCESS_RATE:.0%} of calls succeed and p95 latency is "
            f"at most {SLOW_P95_MS / 1000:.0f} s. Degraded: success below "
            f"{HEALTHY_SUCCESS_RATE:.0%} or p95 above {SLOW_P95_MS / 1000:.0f} s. Failing: "
            f"success below {FAILING_SUCCESS_RATE:.0%}. Untested: no call in the window. "
            "Inactive: switched off.")


@dataclass(frozen=True)
class HealthError:
    """The newest failed exchange of an integration in the window."""

    exchange_id: int
    at: datetime
    kind: str
    message: str


@dataclass(frozen=True)
class HealthTile:
    """One integration's tile: status, success rate, p50/p95, volume and the last error."""

    integration_id: int
    name: str
    active: bool
    exchanges: int
    failures: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    error_kinds: dict[str, int] = field(default_factory=dict)
    last_error: HealthError | None = None

    @property
    def status(self) -> str:
        """See ``health_status``."""
        return health_status(active=self.active, exchanges=self.exchanges,
                             success_rate=self.success_rate, p95_ms=self.p95_ms)


@dataclass(frozen=True)
class LatencyPoint:
    """One bucket of one integration: calls, failures and p50/p95 latency."""

    integration_id: int
    start: datetime
    exchanges: int
    failures: int
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class ErrorPoint:
    """Failed calls of one error kind in one bucket of one integration."""

    integration_id: int
    start: datetime
    kind: str
    count: int


@dataclass(frozen=True)
class HealthOverview:
    """Everything the health page shows for one window."""

    window: HealthWindow
    since: datetime
    until: datetime
    tiles: list[HealthTile]
    latency: list[LatencyPoint]
    errors: list[ErrorPoint]

    def names(self) -> dict[int, str]:
        """Integration id → name."""
        return {t.integration_id: t.name for t in self.tiles}


# -- SQL helpers ------------------------------------------------------------------------------


class bucket_index(FunctionElement[int]):
    """``floor((epoch(column) - start) / width)`` in whole seconds, per dialect."""

    type = Integer()
    inherit_cache = True


@compiles(bucket_index, "sqlite")
def _bucket_sqlite(element: bucket_index, compiler: Any, **kw: Any) -> str:
    column, start, width = list(element.clauses)
    return (f"((CAST(strftime('%s', {compiler.process(column, **kw)}) AS INTEGER) - "
            f"{compiler.process(start, **kw)}) / {compiler.process(width, **kw)})")


@compiles(bucket_index)
def _bucket_default(element: bucket_index, compiler: Any, **kw: Any) -> str:
    column, start, width = list(element.clauses)
    return (f"CAST(FLOOR((EXTRACT(EPOCH FROM {compiler.process(column, **kw)}) - "
            f"{compiler.process(start, **kw)}) / {compiler.process(width, **kw)}) AS INTEGER)")


def _percentiles(s: Session, ranked: Any, keys: list[Any]) -> dict[tuple[Any, ...],
                                                                   tuple[float, float]]:
    """Nearest-rank p50 and p95 per group of a subquery with ``rn``, ``n`` and ``ms``."""
    result: dict[tuple[Any, ...], list[float]] = {}
    for index, p in enumerate((0.50, 0.95)):
        rows = s.execute(
            select(*keys, func.min(ranked.c.ms)).where(ranked.c.rn >= ranked.c.n * p)
            .group_by(*keys)
        ).all()
        for row in rows:
            key = tuple(row[:-1])
            result.setdefault(key, [0.0, 0.0])[index] = float(row[-1])
    return {k: (v[0], v[1]) for k, v in result.items()}


def _failed() -> ColumnElement[int]:
    return func.coalesce(func.sum(case((ExchangeRecord.error_kind.is_not(None), 1), else_=0)),
                         0)


class HealthService:
    """The health overview (every role may read it)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def overview(self, actor: Actor, window: str = "24h") -> HealthOverview:
        """Tiles and bucketed series for ``window`` (a key of ``WINDOWS``; unknown → 24h)."""
        actor.require(Permission.VIEW_HEALTH, "view integration health")
        chosen = WINDOWS.get(window, WINDOWS["24h"])
        until = self.ctx.now()
        width = int(chosen.bucket.total_seconds())
        # buckets aligned to whole multiples of their width, so cached reads stay comparable
        start_epoch = (int(until.timestamp()) - int(chosen.span.total_seconds())) // width * width
        since = datetime.fromtimestamp(start_epoch, tz=until.tzinfo)
        with self.ctx.db.session(readonly=True) as s:
            tiles = self._tiles(s, since)
            latency, errors = self._series(s, since, start_epoch, width)
        return HealthOverview(window=chosen, since=since, until=until, tiles=tiles,
                              latency=latency, errors=errors)

    @staticmethod
    def _in_window(since: datetime) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        return (ExchangeRecord.started_at >= since, ExchangeRecord.integration_id.is_not(None))

    def _tiles(self, s: Session, since: datetime) -> list[HealthTile]:
        window = self._in_window(since)
        integrations = s.execute(select(Integration.id, Integration.name, Integration.active)
                                 .order_by(Integration.name)).all()
        totals = {int(i): (int(n), int(f)) for i, n, f in s.execute(
            select(ExchangeRecord.integration_id, func.count(), _failed()).where(*window)
            .group_by(ExchangeRecord.integration_id)).all() if i is not None}
        kinds: dict[int, dict[str, int]] = {}
        for i, kind, n in s.execute(
                select(ExchangeRecord.integration_id, ExchangeRecord.error_kind, func.count())
                .where(*window, ExchangeRecord.error_kind.is_not(None))
                .group_by(ExchangeRecord.integration_id, ExchangeRecord.error_kind)).all():
            if i is not None:
                kinds.setdefault(int(i), {})[str(kind)] = int(n)
        ranked = select(
            ExchangeRecord.integration_id.label("iid"), ExchangeRecord.elapsed_ms.label("ms"),
            func.row_number().over(partition_by=ExchangeRecord.integration_id,
                                   order_by=ExchangeRecord.elapsed_ms).label("rn"),
            func.count().over(partition_by=ExchangeRecord.integration_id).label("n"),
        ).where(*window).subquery()
        percentiles = _percentiles(s, ranked, [ranked.c.iid])
        last = self._last_errors(s, since)
        tiles = []
        for iid, name, active in integrations:
            n, failures = totals.get(int(iid), (0, 0))
            p50, p95 = percentiles.get((iid,), (None, None))
            tiles.append(HealthTile(
                integration_id=int(iid), name=str(name), active=bool(active), exchanges=n,
                failures=failures, success_rate=(n - failures) / n if n else None,
                p50_ms=p50, p95_ms=p95, error_kinds=kinds.get(int(iid), {}),
                last_error=last.get(int(iid))))
        return tiles

    def _last_errors(self, s: Session, since: datetime) -> dict[int, HealthError]:
        newest = (select(func.max(ExchangeRecord.id).label("id"))
                  .where(*self._in_window(since), ExchangeRecord.error_kind.is_not(None))
                  .group_by(ExchangeRecord.integration_id).subquery())
        rows = s.execute(
            select(ExchangeRecord.integration_id, ExchangeRecord.id, ExchangeRecord.started_at,
                   ExchangeRecord.error_kind, ExchangeRecord.error_message)
            .join(newest, newest.c.id == ExchangeRecord.id)).all()
        return {int(i): HealthError(int(x), at, str(k), str(m or ""))
                for i, x, at, k, m in rows if i is not None}

    def _series(self, s: Session, since: datetime, start_epoch: int, width: int
                ) -> tuple[list[LatencyPoint], list[ErrorPoint]]:
        bucket = bucket_index(ExchangeRecord.started_at, start_epoch, width).label("b")

        def start(index: int) -> datetime:
            return since + timedelta(seconds=int(index) * width)

        window = self._in_window(since)
        counted = select(ExchangeRecord.integration_id.label("iid"), bucket,
                         ExchangeRecord.error_kind.label("kind")).where(*window).subquery()
        counts = {(int(i), int(b)): (int(n), int(f)) for i, b, n, f in s.execute(
            select(counted.c.iid, counted.c.b, func.count(),
                   func.coalesce(func.sum(case((counted.c.kind.is_not(None), 1), else_=0)), 0))
            .group_by(counted.c.iid, counted.c.b)).all()}
        ranked = select(
            ExchangeRecord.integration_id.label("iid"), bucket,
            ExchangeRecord.elapsed_ms.label("ms"),
            func.row_number().over(partition_by=[ExchangeRecord.integration_id, bucket.element],
                                   order_by=ExchangeRecord.elapsed_ms).label("rn"),
            func.count().over(partition_by=[ExchangeRecord.integration_id,
                                            bucket.element]).label("n"),
        ).where(*window).subquery()
        percentiles = _percentiles(s, ranked, [ranked.c.iid, ranked.c.b])
        latency = [LatencyPoint(iid, start(b), n, f, *percentiles.get((iid, b), (0.0, 0.0)))
                   for (iid, b), (n, f) in sorted(counts.items())]
        errors = [ErrorPoint(int(i), start(int(b)), str(k), int(n)) for i, b, k, n in s.execute(
            select(counted.c.iid, counted.c.b, counted.c.kind, func.count())
            .where(counted.c.kind.is_not(None))
            .group_by(counted.c.iid, counted.c.b, counted.c.kind)
            .order_by(counted.c.iid, counted.c.b, counted.c.kind)).all()]
        return latency, errors
