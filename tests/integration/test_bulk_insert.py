"""``bulk_insert`` (COPY on PostgreSQL, a multi-row INSERT on SQLite) stores exactly what a
plain INSERT of the same rows stores: hostile text byte for byte, JSON, times, the Python
defaults of columns left out; ids in the order of the rows; a collision raises SQLAlchemy's
IntegrityError and inserts nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from linker.store.bulk import bulk_insert
from linker.store.database import Database
from linker.store.models import AuditEvent, Customer, CustomerEmail, ExchangeRecord, table_of

HOSTILE = ["tab\there", "new\nline\r\n", "back\\slash \\N \\.", "\\.\n", "quote ' \" ;--",
           "ünïcödé ✓ 🙂", "", "NULL", "<b>*md*</b>"]


def _exchange(i: int, text: str) -> dict[str, Any]:
    return dict(integration_name=text, customer_id=None, actor="bulk", kind="detailed",
                trigger="manual", correlation_id=f"c-{i}",
                started_at=datetime(2026, 12, 4, 5, i, tzinfo=UTC), elapsed_ms=1.5 * i,
                method="POST", url="http://127.0.0.1/lookup",
                request_headers={"X-Text": text, "nested": {"list": [1, None, text]}},
                request_body=text, response_status=200, response_headers=None,
                response_body=text, response_size=len(text), error_kind=None,
                error_message=None, result_count=i)


def _stored(db: Database, ids: list[int]) -> list[tuple[Any, ...]]:
    table = table_of(ExchangeRecord)
    with db.session(readonly=True) as s:
        rows = {r.id: r for r in s.execute(select(table).where(table.c.id.in_(ids)))}
    return [tuple(v for k, v in rows[i]._mapping.items() if k != "id") for i in ids]


def test_rows_come_back_as_a_plain_insert_stores_them(db: Database) -> None:
    rows = [_exchange(i, text) for i, text in enumerate(HOSTILE)]
    table = table_of(ExchangeRecord)
    with db.session() as s:
        plain = [int(s.connection().execute(insert(table).returning(table.c.id), [row])
                     .scalar_one()) for row in rows]
        bulk = bulk_insert(s, table, rows, ids=True)
    assert len(set(bulk)) == len(rows) and not set(bulk) & set(plain)
    assert _stored(db, bulk) == _stored(db, plain)
    by_id = dict(zip(bulk, rows, strict=True))
    with db.session(readonly=True) as s:
        for record in s.scalars(select(ExchangeRecord).where(ExchangeRecord.id.in_(bulk))):
            expected = by_id[record.id]
            assert (record.request_body, record.correlation_id) == (
                expected["request_body"], expected["correlation_id"])
            assert record.request_headers == expected["request_headers"]
            assert record.response_headers is None
            # columns left out got their Python defaults
            assert (record.violations, record.body_truncated) == ([], False)


def test_a_callable_default_is_made_for_each_row(db: Database) -> None:
    rows = [dict(actor="a", role="admin", action=f"x{i}", entity_type="t", entity_id=str(i),
                 before=None, after={"i": i}) for i in range(3)]
    with db.session() as s:
        bulk_insert(s, table_of(AuditEvent), rows)
    with db.session(readonly=True) as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [(e.action, e.after) for e in events] == [(f"x{i}", {"i": i}) for i in range(3)]
    assert all(e.at is not None for e in events)


def test_a_collision_raises_integrity_error_and_inserts_nothing(db: Database) -> None:
    with db.session() as s:
        s.add(Customer(id="c1", name="Ada", custom_attributes={}))
        s.flush()
        s.add(CustomerEmail(customer_id="c1", original="a@x.io", normalized="a@x.io",
                            position=0))
    rows = [dict(customer_id="c1", original=e, normalized=e, position=p, source="S")
            for p, e in enumerate(["b@x.io", "a@x.io"], start=1)]
    with db.session() as s:
        with pytest.raises(IntegrityError), s.begin_nested():
            bulk_insert(s, table_of(CustomerEmail), rows)
        # the session goes on after the savepoint rolled back
        bulk_insert(s, table_of(CustomerEmail), rows[:1])
    with db.session(readonly=True) as s:
        assert sorted(s.scalars(select(CustomerEmail.normalized))) == ["a@x.io", "b@x.io"]


def test_nothing_to_insert_sends_nothing(db: Database) -> None:
    with db.session() as s:
        assert bulk_insert(s, table_of(ExchangeRecord), [], ids=True) == []
