"""Coverage, health, audit-log and exchange-log reports, on rows inserted directly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from linker.cli.main import main
from linker.core.permissions import Actor, Role
from linker.services.context import ServiceContext
from linker.services.errors import NotFound, PermissionDenied
from linker.services.exchanges import ExchangeFilter, ExchangeService
from linker.services.health import HealthService
from linker.services.reports import ReportService
from linker.store.models import (
    AuditEvent,
    AutolinkOutcome,
    Customer,
    ExchangeRecord,
    Integration,
    Link,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LEAD = Actor("lead", Role.SUPPORT_LEAD)
ADMIN = Actor("root", Role.ADMIN)


def _exchange(integration: Integration, ms: float, *, error: str | None = None,
              at: datetime = NOW - timedelta(minutes=5), status: int | None = 200,
              customer: str | None = None) -> ExchangeRecord:
    return ExchangeRecord(
        integration_id=integration.id, integration_name=integration.name, customer_id=customer,
        actor="agent", kind="search", trigger="search", correlation_id=f"c{ms}",
        started_at=at, elapsed_ms=ms, method="POST", url="http://127.0.0.1:1/",
        request_headers={"Authorization": "Basic ****"}, request_body="{}",
        response_status=status, response_headers={}, response_body='{"results":[]}',
        response_size=14, error_kind=error, error_message=f"{error} happened" if error else None,
    )


@pytest.fixture
def seeded(ctx: ServiceContext) -> dict[str, int]:
    ctx.now = lambda: NOW
    with ctx.db.session() as s:
        shop = Integration(name="Shop", name_key="shop", url="http://127.0.0.1:8401/")
        loyalty = Integration(name="Loyalty", name_key="loyalty", url="http://127.0.0.1:8402/")
        old = Integration(name="Old", name_key="old", url="http://127.0.0.1:8409/", active=False)
        s.add_all([shop, loyalty, old])
        s.flush()
        customers = [Customer(id=f"cust{i}", name=f"Person {i}") for i in range(5)]
        s.add_all(customers)
        s.flush()
        s.add_all([
            Link(customer_id="cust0", integration_id=shop.id, external_customer_id="s0",
                 method="auto", created_at=NOW - timedelta(days=2)),
            Link(customer_id="cust1", integration_id=shop.id, external_customer_id="s1",
                 method="manual", created_at=NOW - timedelta(days=1)),
            Link(customer_id="cust1", integration_id=loyalty.id, external_customer_id="l1",
                 method="auto", created_at=NOW - timedelta(days=1)),
        ])
        # cust2/shop: ambiguous then no_match: only the latest (no_match) counts.
        for outcome, minutes in [("ambiguous", 30), ("no_match", 10)]:
            s.add(AutolinkOutcome(customer_id="cust2", integration_id=shop.id, outcome=outcome,
                                  created_at=NOW - timedelta(minutes=minutes)))
        s.add(AutolinkOutcome(customer_id="cust0", integration_id=shop.id, outcome="linked"))
        s.add(AutolinkOutcome(customer_id="cust3", integration_id=loyalty.id, outcome="error"))
        # Shop: 20 calls of 10..200 ms, 2 failures. Loyalty: 4 calls, 3 failures.
        for i in range(1, 21):
            s.add(_exchange(shop, 10.0 * i, error="timeout" if i in (5, 20) else None))
        for i in range(4):
            s.add(_exchange(loyalty, 100.0, error=None if i == 0 else "http_status", status=500))
        s.add(_exchange(loyalty, 1.0, at=NOW - timedelta(days=3)))  # outside the 24 h window
        s.add_all([
            AuditEvent(at=NOW - timedelta(hours=2), actor="root", role="admin",
                       action="integration.created", entity_type="integration",
                       entity_id=str(shop.id), after={"name": "Shop"}),
            AuditEvent(at=NOW - timedelta(hours=1), actor="agent1", role="agent",
                       action="link.created", entity_type="link", entity_id="cust1",
                       after={"external_customer_id": "s1"}),
        ])
        return {"shop": shop.id, "loyalty": loyalty.id, "old": old.id}


def test_coverage_counts_links_and_latest_outcomes(ctx: ServiceContext,
                                                   seeded: dict[str, int]) -> None:
    report = ReportService(ctx).coverage(LEAD)
    assert report.customers == 5
    assert report.linked == 2
    assert report.linked_share == pytest.approx(0.4)
    per = {i.name: (i.linked, i.auto, i.manual) for i in report.integrations}
    assert per == {"Shop": (2, 1, 1), "Loyalty": (1, 1, 0), "Old": (0, 0, 0)}
    assert report.outcomes["no_match"] == 1
    assert report.outcomes["ambiguous"] == 0
    assert report.outcomes["linked"] == 1
    assert report.outcomes["error"] == 1
    assert set(report.outcomes) == {"linked", "no_match", "ambiguous", "no_field_match",
                                    "conflict", "suppressed", "skipped", "error"}


def test_health_rates_percentiles_and_status(ctx: ServiceContext,
                                             seeded: dict[str, int]) -> None:
    # The per-integration health is the Health page's tiles (ReportService.health went).
    health = {t.name: t for t in HealthService(ctx).overview(LEAD, "24h").tiles}
    shop = health["Shop"]
    assert shop.exchanges == 20
    assert shop.failures == 2
    assert shop.success_rate == pytest.approx(0.9)
    assert shop.p50_ms == pytest.approx(100.0)
    assert shop.p95_ms == pytest.approx(190.0)
    assert shop.error_kinds == {"timeout": 2}
    assert shop.status == "degraded"
    assert shop.last_error is not None and shop.last_error.kind == "timeout"
    loyalty = health["Loyalty"]
    assert loyalty.exchanges == 4  # the 3-day-old call is outside the window
    assert loyalty.status == "failing"
    assert loyalty.error_kinds == {"http_status": 3}
    assert health["Old"].status == "inactive"
    assert health["Old"].success_rate is None


def test_links_per_day(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    days = ReportService(ctx).links_per_day(LEAD, days=30)
    assert [(d.day, d.count) for d in days] == [("2026-11-25", 1), ("2026-11-26", 2)]


def test_audit_log_filters_newest_first(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    service = ReportService(ctx)
    entries = service.audit_log(LEAD)
    assert [e.action for e in entries] == ["link.created", "integration.created"]
    assert [e.actor for e in service.audit_log(LEAD, actor_name="root")] == ["root"]
    assert service.audit_log(LEAD, action="link.created")[0].after == {
        "external_customer_id": "s1"}
    assert service.audit_log(LEAD, since=NOW - timedelta(minutes=90))[0].actor == "agent1"
    assert len(service.audit_log(LEAD, since=NOW - timedelta(minutes=90))) == 1


@pytest.mark.parametrize("role", [Role.AGENT])
def test_reports_refused_to_roles_without_permission(ctx: ServiceContext, role: Role) -> None:
    actor = Actor("someone", role)
    service = ReportService(ctx)
    with pytest.raises(PermissionDenied):
        service.coverage(actor)
    with pytest.raises(PermissionDenied):
        service.audit_log(actor)
    with pytest.raises(PermissionDenied):
        ExchangeService(ctx).list(actor)


def test_developer_sees_health_but_not_audit(ctx: ServiceContext) -> None:
    developer = Actor("dev", Role.DEVELOPER)
    assert HealthService(ctx).overview(developer).tiles == []
    with pytest.raises(PermissionDenied):
        ReportService(ctx).audit_log(developer)


def test_exchange_filters(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    service = ExchangeService(ctx)
    assert service.count(ADMIN) == 25
    assert service.count(ADMIN, ExchangeFilter(integration_id=seeded["shop"])) == 20
    failed = service.list(ADMIN, ExchangeFilter(error_kind="failed"))
    assert len(failed) == 5 and all(not e.ok for e in failed)
    assert service.count(ADMIN, ExchangeFilter(error_kind="timeout")) == 2
    assert service.count(ADMIN, ExchangeFilter(error_kind="ok")) == 20
    assert service.count(ADMIN, ExchangeFilter(status=500)) == 4
    assert service.count(ADMIN, ExchangeFilter(since=NOW - timedelta(days=1))) == 24
    assert service.count(ADMIN, ExchangeFilter(integration_name="LOYALTY")) == 5
    newest = service.list(ADMIN, limit=1)[0]
    assert service.get(ADMIN, newest.id).correlation_id == newest.correlation_id
    with pytest.raises(NotFound):
        service.get(ADMIN, 999_999)


def test_coverage_and_export_cli(ctx: ServiceContext, seeded: dict[str, int],
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LINKER_HOME", str(ctx.settings.home))
    monkeypatch.setenv("LINKER_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("LINKER_SECRET_KEY", ctx.settings.secret_key or "")
    assert main(["coverage", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["customers"] == 5 and data["linked"] == 2
    assert {"name": "Shop", "linked": 2, "auto": 1, "manual": 1} in data["integrations"]
    assert data["outcomes"]["no_match"] == 1

    assert main(["exchanges", "export", "--integration", "Loyalty", "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert all(json.loads(line)["integration"] == "Loyalty" for line in lines)
    assert "Basic ****" in lines[0]

    assert main(["exchanges", "export", "--since", "2026-11-26"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 24
    assert main(["exchanges", "export", "--since", "yesterday"]) == 2
    assert main(["exchanges", "export", "--integration", "Nope"]) == 1
    assert "no integration named 'Nope'" in capsys.readouterr().err
