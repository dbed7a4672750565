"""Health overview: tiles, statuses (untested without traffic) and SQL-bucketed series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from linker.core.permissions import Actor, Role
from linker.services.context import ServiceContext
from linker.services.health import HealthService, health_status, thresholds_sentence
from linker.store.models import ExchangeRecord, Integration

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
AGENT = Actor("agent", Role.AGENT)


def _exchange(integration: Integration, ms: float, at: datetime, error: str | None = None
              ) -> ExchangeRecord:
    return ExchangeRecord(
        integration_id=integration.id, integration_name=integration.name, actor="agent",
        kind="search", trigger="search", correlation_id=f"c{ms}{at.timestamp()}", started_at=at,
        elapsed_ms=ms, method="POST", url="http://127.0.0.1:1/", request_headers={},
        request_body="{}", response_status=None if error else 200, error_kind=error,
        error_message=f"{error} happened" if error else None)


@pytest.fixture
def service(ctx: ServiceContext) -> HealthService:
    ctx.now = lambda: NOW
    with ctx.db.session() as s:
        shop = Integration(name="Shop", name_key="shop", url="http://127.0.0.1:8401/")
        flaky = Integration(name="Flaky", name_key="flaky", url="http://127.0.0.1:8402/")
        new = Integration(name="New", name_key="new", url="http://127.0.0.1:8403/")
        off = Integration(name="Off", name_key="off", url="http://127.0.0.1:8404/",
                          active=False)
        s.add_all([shop, flaky, new, off])
        s.flush()
        # Shop: 20 calls in the last hour, 10 ms .. 200 ms, all fine
        s.add_all([_exchange(shop, 10.0 * (i + 1), NOW - timedelta(minutes=2 + i * 2))
                   for i in range(20)])
        # Flaky: 4 calls, 3 timeouts, one 5 xx, one good, 30 min ago and 3 h ago
        s.add_all([
            _exchange(flaky, 50, NOW - timedelta(minutes=30)),
            _exchange(flaky, 5000, NOW - timedelta(minutes=31), "timeout"),
            _exchange(flaky, 5000, NOW - timedelta(minutes=32), "timeout"),
            _exchange(flaky, 80, NOW - timedelta(hours=3), "http_status"),
        ])
        # outside every window
        s.add(_exchange(shop, 9999, NOW - timedelta(days=8), "timeout"))
    return HealthService(ctx)


def test_tiles_over_a_day(service: HealthService) -> None:
    overview = service.overview(AGENT, "24h")
    tiles = {t.name: t for t in overview.tiles}
    assert [t.name for t in overview.tiles] == ["Flaky", "New", "Off", "Shop"]
    shop = tiles["Shop"]
    assert (shop.exchanges, shop.failures, shop.success_rate) == (20, 0, 1.0)
    assert (shop.p50_ms, shop.p95_ms) == (100.0, 190.0)
    assert shop.status == "healthy" and shop.last_error is None
    flaky = tiles["Flaky"]
    assert (flaky.exchanges, flaky.failures) == (4, 3)
    assert flaky.error_kinds == {"timeout": 2, "http_status": 1}
    assert flaky.status == "failing"
    assert flaky.last_error is not None and flaky.last_error.kind == "http_status"
    assert tiles["New"].status == "untested" and tiles["New"].success_rate is None
    assert tiles["Off"].status == "inactive"


def test_the_window_switch_changes_what_counts(service: HealthService) -> None:
    hour = {t.name: t for t in service.overview(AGENT, "1h").tiles}
    assert hour["Flaky"].exchanges == 3
    assert hour["Flaky"].last_error is not None and hour["Flaky"].last_error.kind == "timeout"
    week = {t.name: t for t in service.overview(AGENT, "7d").tiles}
    assert week["Shop"].exchanges == 20  # the call 8 days ago is outside the week


def test_series_are_bucketed_in_sql(service: HealthService) -> None:
    overview = service.overview(AGENT, "1h")
    width = overview.window.bucket
    shop_id = next(t.integration_id for t in overview.tiles if t.name == "Shop")
    points = [p for p in overview.latency if p.integration_id == shop_id]
    assert sum(p.exchanges for p in points) == 20
    assert all(overview.since <= p.start < overview.until for p in points)
    assert all((p.start - overview.since) % width == timedelta(0) for p in points)
    assert len({p.start for p in points}) == len(points) >= 8  # 40 minutes of 5-minute buckets
    assert all(p.p50_ms <= p.p95_ms for p in points)
    day = service.overview(AGENT, "24h")
    flaky_id = next(t.integration_id for t in day.tiles if t.name == "Flaky")
    kinds = {(e.kind, e.count) for e in day.errors if e.integration_id == flaky_id}
    assert kinds == {("timeout", 2), ("http_status", 1)}


def test_status_rules() -> None:
    assert health_status(active=True, exchanges=0, success_rate=None, p95_ms=None) == "untested"
    assert health_status(active=True, exchanges=10, success_rate=0.95, p95_ms=5000) == "healthy"
    assert health_status(active=True, exchanges=10, success_rate=0.94, p95_ms=10) == "degraded"
    assert health_status(active=True, exchanges=10, success_rate=1.0, p95_ms=5001) == "degraded"
    assert health_status(active=True, exchanges=10, success_rate=0.49, p95_ms=10) == "failing"
    assert health_status(active=False, exchanges=10, success_rate=1.0, p95_ms=10) == "inactive"
    assert "95%" in thresholds_sentence() and "5 s" in thresholds_sentence()


def test_every_role_may_read_health(ctx: ServiceContext) -> None:
    for role in Role:
        assert HealthService(ctx).overview(Actor("x", role)).tiles == []
