"""Audit log: filters at the database, newest first, keyset pages, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from linker.core.permissions import Actor, Role
from linker.csvexport import safe_cell
from linker.services.audit_log import AuditFilter, AuditLogService
from linker.services.context import ServiceContext
from linker.store.models import AuditEvent, Integration

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LEAD = Actor("lead", Role.SUPPORT_LEAD)


@pytest.fixture
def seeded(ctx: ServiceContext) -> dict[str, int]:
    with ctx.db.session() as s:
        shop = Integration(name="Shop", name_key="shop", url="http://127.0.0.1:8401/")
        other = Integration(name="Other", name_key="other", url="http://127.0.0.1:8402/")
        s.add_all([shop, other])
        s.flush()
        events = [
            ("root", "admin", "integration.created", "integration", str(shop.id), None,
             {"name": "Shop"}),
            ("root", "admin", "integration.created", "integration", str(other.id), None,
             {"name": "Other"}),
            ("agent1", "agent", "link.created", "customer", "cust1", None,
             {"integration_id": shop.id, "integration": "Shop", "external_customer_id": "s1"}),
            ("agent1", "agent", "link.removed", "customer", "cust1",
             {"integration_id": shop.id, "integration": "Shop"}, None),
            ("agent1", "agent", "suppression.added", "customer", "cust1", None,
             {"integration": "Shop"}),
            ("agent2", "agent", "link.created", "customer", "cust2", None,
             {"integration_id": other.id, "integration": "Other",
              "external_customer_id": "=cmd|'/C calc'!A0"}),
        ]
        for n, (who, role, action, kind, eid, before, after) in enumerate(events):
            s.add(AuditEvent(at=NOW - timedelta(hours=len(events) - n), actor=who, role=role,
                             action=action, entity_type=kind, entity_id=eid, before=before,
                             after=after))
    return {"shop": shop.id, "other": other.id}


def actions(page: object) -> list[str]:
    return [e.action for e in page.entries]  # type: ignore[attr-defined]


def test_newest_first_in_keyset_pages(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    svc = AuditLogService(ctx)
    first = svc.page(LEAD, limit=4)
    assert [e.at for e in first.entries] == sorted((e.at for e in first.entries), reverse=True)
    assert first.next_before == (first.entries[-1].at, first.entries[-1].id)
    second = svc.page(LEAD, before=first.next_before, limit=4)
    assert len(second.entries) == 2 and second.next_before is None
    assert {e.id for e in first.entries}.isdisjoint({e.id for e in second.entries})


def test_order_is_by_time_then_id(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    with ctx.db.session() as s:  # recorded last, but happened first
        s.add(AuditEvent(at=NOW - timedelta(days=30), actor="late", role="admin",
                         action="user.created", entity_type="user", entity_id="late"))
        s.add(AuditEvent(at=NOW - timedelta(hours=1), actor="tie", role="admin",
                         action="user.created", entity_type="user", entity_id="tie"))
    svc = AuditLogService(ctx)
    seen, before = [], None
    while True:
        page = svc.page(LEAD, before=before, limit=2)
        seen += page.entries
        if page.next_before is None:
            break
        before = page.next_before
    assert len(seen) == 8 and seen[-1].actor == "late"
    keys = [(e.at, e.id) for e in seen]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize(("filters", "expected"), [
    (AuditFilter(actor="agent1"), ["suppression.added", "link.removed", "link.created"]),
    (AuditFilter(action="link.created"), ["link.created", "link.created"]),
    (AuditFilter(customer_id="cust2"), ["link.created"]),
    (AuditFilter(since=NOW - timedelta(hours=3), until=NOW - timedelta(hours=1)),
     ["suppression.added", "link.removed"]),
])
def test_filters(ctx: ServiceContext, seeded: dict[str, int], filters: AuditFilter,
                 expected: list[str]) -> None:
    assert actions(AuditLogService(ctx).page(LEAD, filters)) == expected


def test_customer_filter_takes_an_id_pasted_from_a_csv_export(
        ctx: ServiceContext, seeded: dict[str, int]) -> None:
    """A customer id starting with "-" comes back from a CSV export as "'-…" (safe_cell);
    pasted into the filter it still finds the profile's events."""
    with ctx.db.session() as s:
        s.add(AuditEvent(at=NOW - timedelta(minutes=5), actor="agent1", role="agent",
                         action="link.created", entity_type="customer", entity_id="-6QKYdash"))
    assert safe_cell("-6QKYdash") == "'-6QKYdash"
    page = AuditLogService(ctx).page(LEAD, AuditFilter(customer_id="'-6QKYdash"))
    assert [e.entity_id for e in page.entries] == ["-6QKYdash"]


def test_integration_filter_finds_events_naming_it(ctx: ServiceContext,
                                                   seeded: dict[str, int]) -> None:
    page = AuditLogService(ctx).page(LEAD, AuditFilter(integration_id=seeded["shop"]))
    assert actions(page) == ["suppression.added", "link.removed", "link.created",
                             "integration.created"]
    other = AuditLogService(ctx).page(LEAD, AuditFilter(integration_id=seeded["other"]))
    assert actions(other) == ["link.created", "integration.created"]


def test_choices_and_export(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    svc = AuditLogService(ctx)
    choices = svc.choices(LEAD)
    assert choices.actors == ["agent1", "agent2", "root"]
    assert "suppression.added" in choices.actions
    rows = list(csv.DictReader(io.StringIO(svc.export_csv(LEAD, AuditFilter(actor="agent2")))))
    assert len(rows) == 1
    assert '"external_customer_id": "=cmd' in rows[0]["after"]
    assert not rows[0]["after"].startswith("=")
