"""Coverage: summary, daily linked-share trend, worklists by reason (keyset pages), CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event

from linker.core.permissions import Actor, Role
from linker.services.context import ServiceContext
from linker.services.coverage import REASONS, CoverageService
from linker.services.errors import InvalidInput, NotFound
from linker.store.models import (
    AutolinkOutcome,
    Customer,
    CustomerEmail,
    Integration,
    Link,
    Suppression,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LEAD = Actor("lead", Role.SUPPORT_LEAD)


@pytest.fixture
def seeded(ctx: ServiceContext) -> dict[str, int]:
    ctx.now = lambda: NOW
    with ctx.db.session() as s:
        shop = Integration(name="Shop", name_key="shop", url="http://127.0.0.1:8401/")
        other = Integration(name="Other", name_key="other", url="http://127.0.0.1:8402/")
        s.add_all([shop, other])
        s.flush()
        # c00..c11: created 10 days ago, except c10/c11 created 2 days ago
        for i in range(12):
            created = NOW - timedelta(days=2 if i >= 10 else 10)
            s.add(Customer(id=f"c{i:02}", name=f"Person {i}", created_at=created))
        s.flush()
        s.add(CustomerEmail(customer_id="c03", original="=HYPERLINK(\"x\")",
                            normalized="evil@x.example", position=0))
        s.add_all([
            Link(customer_id="c00", integration_id=shop.id, external_customer_id="s0",
                 method="auto", created_at=NOW - timedelta(days=5)),
            Link(customer_id="c01", integration_id=shop.id, external_customer_id="s1",
                 method="manual", created_at=NOW - timedelta(days=1)),
            Link(customer_id="c01", integration_id=other.id, external_customer_id="o1",
                 method="auto", created_at=NOW - timedelta(days=3)),
        ])
        outcomes = {"c02": ["ambiguous", "no_match"], "c03": ["ambiguous"],
                    "c04": ["no_field_match"], "c05": ["conflict"], "c06": ["error"],
                    "c07": ["linked"], "c00": ["linked"]}
        for cid, seq in outcomes.items():
            for n, outcome in enumerate(seq):
                s.add(AutolinkOutcome(customer_id=cid, integration_id=shop.id,
                                      outcome=outcome, reason=f"{outcome} because",
                                      created_at=NOW - timedelta(minutes=60 - n)))
        s.add(Suppression(customer_id="c07", integration_id=shop.id, created_by="lead"))
        # an outcome on the other integration must not leak into Shop's worklist
        s.add(AutolinkOutcome(customer_id="c08", integration_id=other.id, outcome="error"))
    return {"shop": shop.id, "other": other.id}


def test_reason_counts(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    counts = CoverageService(ctx).reason_counts(LEAD, seeded["shop"])
    assert set(counts) == set(REASONS)
    assert {k: v for k, v in counts.items() if v} == {
        "never_tried": 4, "no_match": 1, "ambiguous": 1, "no_field_match": 1, "conflict": 1,
        "error": 1, "suppressed": 1}


def test_worklist_pages_by_keyset(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    svc = CoverageService(ctx)
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = svc.worklist(LEAD, seeded["shop"], after=after, limit=4)
        assert len(page.rows) <= 4
        seen += [r.customer_id for r in page.rows]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == [f"c{i:02}" for i in range(2, 12)]
    never = svc.worklist(LEAD, seeded["shop"], "never_tried").rows
    assert [r.customer_id for r in never] == ["c08", "c09", "c10", "c11"]
    assert all(r.attempted_at is None and r.exchange_id is None for r in never)
    latest = svc.worklist(LEAD, seeded["shop"], "no_match").rows
    assert [(r.customer_id, r.detail) for r in latest] == [("c02", "no_match because")]
    evil = svc.worklist(LEAD, seeded["shop"], "ambiguous").rows[0]
    assert evil.email == '=HYPERLINK("x")'


def test_worklist_refuses_unknown_reason_and_integration(ctx: ServiceContext,
                                                         seeded: dict[str, int]) -> None:
    with pytest.raises(InvalidInput, match="unknown reason"):
        CoverageService(ctx).worklist(LEAD, seeded["shop"], "bogus")
    with pytest.raises(NotFound, match="integration 999"):
        CoverageService(ctx).worklist(LEAD, 999)


def test_export_neutralises_formulas(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    text = CoverageService(ctx).export_csv(LEAD, seeded["shop"])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["customer_id"] for r in rows] == [f"c{i:02}" for i in range(2, 12)]
    assert next(r for r in rows if r["customer_id"] == "c03")["email"] == "'=HYPERLINK(\"x\")"


def test_trend_of_the_linked_share(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    points = CoverageService(ctx).trend(LEAD, days=7)
    assert [p.day for p in points] == [date(2026, 11, 21) + timedelta(days=i)
                                       for i in range(7)]
    by_day = {p.day.isoformat(): (p.customers, p.linked) for p in points}
    assert by_day["2026-11-21"] == (10, 0)
    assert by_day["2026-11-22"] == (10, 1)   # c00 linked 5 days ago
    assert by_day["2026-11-24"] == (10, 2)   # c01's first link (Other) 3 days ago
    assert by_day["2026-11-25"] == (12, 2)   # c10, c11 created 2 days ago
    assert by_day["2026-11-27"] == (12, 2)   # c01's second link does not count twice
    assert points[-1].share == pytest.approx(2 / 12)


def test_summary_matches_the_report(ctx: ServiceContext, seeded: dict[str, int]) -> None:
    summary = CoverageService(ctx).summary(LEAD)
    assert (summary.customers, summary.linked) == (12, 2)


def statements(ctx: ServiceContext, read: Callable[[], object]) -> list[str]:
    """The SQL statements ``read`` sent to the database."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", record)
    try:
        read()
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", record)
    return sent


def test_reason_counts_join_no_profile_to_its_email_and_links(ctx: ServiceContext,
                                                              seeded: dict[str, int]) -> None:
    # 100,000 profiles (issue 22): the counts joined every profile to its links, suppression,
    # latest attempt and first email, only to count reasons; the worklist page still shows
    # them.
    sent = statements(ctx, lambda: CoverageService(ctx).reason_counts(LEAD, seeded["shop"]))
    counting = [q for q in sent if "count(" in q.lower()]
    assert counting and not [q for q in counting if "customer_emails" in q
                             or "LEFT OUTER JOIN" in q.upper()], counting
    page = statements(ctx, lambda: CoverageService(ctx).worklist(LEAD, seeded["shop"]))
    assert any("customer_emails" in q for q in page)


def test_the_trend_counts_earlier_first_links_without_grouping_every_link(
        ctx: ServiceContext, seeded: dict[str, int]) -> None:
    # The profiles first linked before the window are the profiles with a link made before
    # it: a range of the created_at index, not a GROUP BY over every link.
    sent = statements(ctx, lambda: CoverageService(ctx).trend(LEAD, 2))
    before = [q for q in sent if "links" in q and "GROUP BY" not in q.upper()
              and "count(" in q.lower()]
    assert before, sent
