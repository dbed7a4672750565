"""The health overview: per integration status, success rate, latency and errors over a window,
and time-bucketed latency and error series.

One grouped SQL scan of the window (a covering index) returns calls per (integration, bucket,
error kind, whole millisecond); the tiles and series are assembled from those aggregates, and
p50/p95 are exact nearest-rank percentiles to the whole millisecond. No exchange row is loaded
into Python, and no window-function sort is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from linker.core.permissions import Actor, Permission
from linker.services.context import ServiceContext
from linker.store import health as health_store

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


def nearest_rank(histogram: dict[int, int], p: float) -> float | None:
    """The nearest-rank ``p`` percentile of a histogram ``{value: count}``: the smallest value
    whose cumulative count reaches ``p`` × total (None when it is empty)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    running = 0
    for value in sorted(histogram):
        running += histogram[value]
        if running >= p * total:
            return float(value)
    return float(max(histogram))


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
            integrations = health_store.integrations_by_name(s)
            cells = health_store.cells(s, since, start_epoch, width)
            last = {iid: HealthError(*error)
                    for iid, error in health_store.last_errors(s, since).items()}
        return _assemble(chosen, since, until, width, integrations, cells, last)


def _assemble(window: HealthWindow, since: datetime, until: datetime, width: int,
              integrations: Sequence[Any], cells: list[tuple[int, int, str | None, int, int]],
              last: dict[int, HealthError]) -> HealthOverview:
    """Tiles and series from the aggregated cells (a few thousand rows, never the
    exchanges themselves)."""
    calls: dict[tuple[int, int], list[int]] = {}
    kinds: dict[int, dict[str, int]] = {}
    errors: dict[tuple[int, int, str], int] = {}
    per_bucket: dict[tuple[int, int], dict[int, int]] = {}
    overall: dict[int, dict[int, int]] = {}
    for iid, b, kind, ms, n in cells:
        total_failed = calls.setdefault((iid, b), [0, 0])
        total_failed[0] += n
        if kind is not None:
            total_failed[1] += n
            kinds.setdefault(iid, {})[kind] = kinds.get(iid, {}).get(kind, 0) + n
            errors[(iid, b, kind)] = errors.get((iid, b, kind), 0) + n
        bins = per_bucket.setdefault((iid, b), {})
        bins[ms] = bins.get(ms, 0) + n
        everything = overall.setdefault(iid, {})
        everything[ms] = everything.get(ms, 0) + n

    def start(index: int) -> datetime:
        return since + timedelta(seconds=index * width)

    tiles = []
    for iid, name, active in integrations:
        n = sum(c[0] for (i, _), c in calls.items() if i == iid)
        failures = sum(kinds.get(iid, {}).values())
        tiles.append(HealthTile(
            integration_id=int(iid), name=str(name), active=bool(active), exchanges=n,
            failures=failures, success_rate=(n - failures) / n if n else None,
            p50_ms=nearest_rank(overall.get(iid, {}), 0.50),
            p95_ms=nearest_rank(overall.get(iid, {}), 0.95),
            error_kinds=kinds.get(iid, {}), last_error=last.get(int(iid))))
    latency = [LatencyPoint(iid, start(b), c[0], c[1],
                            nearest_rank(per_bucket[(iid, b)], 0.50) or 0.0,
                            nearest_rank(per_bucket[(iid, b)], 0.95) or 0.0)
               for (iid, b), c in sorted(calls.items())]
    return HealthOverview(window=window, since=since, until=until, tiles=tiles,
                          latency=latency,
                          errors=[ErrorPoint(iid, start(b), kind, n)
                                  for (iid, b, kind), n in sorted(errors.items())])
