"""The set-wise detailed-refresh writes (``services.refresh_batch``, the backfill's hot path):
the rows they lock and read first, and the multi-row statements that write them.

Core statements on the session's connection: no ORM object is built and nothing is autoflushed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.store.bulk import bulk_insert
from linker.store.models import (
    Customer,
    CustomerEmail,
    CustomerPhone,
    Integration,
    Link,
    PulledData,
    table_of,
)

Pair = tuple[str, int]
"""(customer id, integration id)."""

PULLED_COLUMNS = ("name", "address", "custom_attributes", "transactions", "dropped",
                  "fetched_at", "last_attempt_at", "last_error", "exchange_id")
"""The ``pulled_data`` columns a refresh reads and writes (besides the pair)."""


def empty_pulled() -> dict[str, Any]:
    """The ``PULLED_COLUMNS`` values of a pair that has no pulled data yet."""
    return dict(name=None, address=None, custom_attributes={}, transactions=[], dropped=[],
                fetched_at=None, last_attempt_at=None, last_error="", exchange_id=None)


def _of_pairs(customer_id: Any, integration_id: Any, pairs: Sequence[Pair]
              ) -> ColumnElement[bool]:
    """Rows of exactly these pairs. The plain list of customer ids comes first because SQLite
    uses no index for a row-value ``IN`` list: alone, that scans the whole table (every link,
    all pulled data) once per batch, so the backfill's cost grew with the database."""
    return and_(customer_id.in_(sorted({c for c, _ in pairs})),
                tuple_(customer_id, integration_id).in_(list(pairs)))


def lock_profiles(s: Session, customer_ids: Sequence[str]) -> None:
    """Lock these profiles until commit, in id order, before any of their links: refreshes of
    one profile from several integrations (an agent opening it, a backfill batch) then apply
    one after the other instead of inserting the same contacts in opposite orders, which
    PostgreSQL ends as a deadlock. FOR NO KEY UPDATE: new links and contacts of the profile
    (which only take a key-share lock on it) are not held up."""
    s.connection().execute(
        select(Customer.id).where(Customer.id.in_(sorted(set(customer_ids))))
        .order_by(Customer.id).with_for_update(key_share=True))


def lock_links(s: Session, pairs: Sequence[Pair]) -> dict[Pair, str]:
    """The external customer id of each pair's link (pairs without one are left out), the
    links locked until commit (FOR UPDATE: refreshes of one pair and an unlink apply one after
    the other)."""
    return {(c, i): x for c, i, x in s.connection().execute(
        select(Link.customer_id, Link.integration_id, Link.external_customer_id)
        .where(_of_pairs(Link.customer_id, Link.integration_id, pairs))
        .order_by(Link.customer_id, Link.integration_id).with_for_update())}


def pulled_values(s: Session, pairs: Sequence[Pair]) -> dict[Pair, dict[str, Any]]:
    """The ``PULLED_COLUMNS`` values of each pair that has pulled data."""
    columns = [getattr(PulledData, c) for c in PULLED_COLUMNS]
    query = (select(PulledData.customer_id, PulledData.integration_id, *columns)
             .where(_of_pairs(PulledData.customer_id, PulledData.integration_id, pairs)))
    return {(row[0], row[1]): dict(zip(PULLED_COLUMNS, row[2:], strict=True))
            for row in s.connection().execute(query)}


def profile_values(s: Session, customer_ids: Sequence[str]) -> list[tuple[str, str, str]]:
    """(id, name, address) of each given profile that exists."""
    return [(cid, name, address) for cid, name, address in s.connection().execute(
        select(Customer.id, Customer.name, Customer.address)
        .where(Customer.id.in_(list(customer_ids))))]


def email_values(s: Session, customer_ids: Sequence[str]) -> list[tuple[str, str, int]]:
    """(customer id, normalised email, position) of every email of the given profiles."""
    return [(cid, normalized, position) for cid, normalized, position in s.connection().execute(
        select(CustomerEmail.customer_id, CustomerEmail.normalized, CustomerEmail.position)
        .where(CustomerEmail.customer_id.in_(list(customer_ids))))]


def phone_values(s: Session, customer_ids: Sequence[str]) -> list[tuple[str, str, str, int]]:
    """(customer id, E.164, type, position) of every phone of the given profiles, by profile
    and position."""
    return [(cid, e164, kind, position) for cid, e164, kind, position in s.connection().execute(
        select(CustomerPhone.customer_id, CustomerPhone.e164, CustomerPhone.type,
               CustomerPhone.position).where(CustomerPhone.customer_id.in_(list(customer_ids)))
        .order_by(CustomerPhone.customer_id, CustomerPhone.position))]


def merge_settings(s: Session, integration_ids: Sequence[int]) -> dict[int, tuple[str, bool]]:
    """Integration id → (name, overwrite_existing) of each given integration that exists."""
    return {iid: (name, overwrite) for iid, name, overwrite in s.connection().execute(
        select(Integration.id, Integration.name, Integration.overwrite_existing)
        .where(Integration.id.in_(list(integration_ids))))}


def update_profiles(s: Session, rows: Sequence[tuple[str, str, str]]) -> None:
    """Set (id, name, address) on those profiles with one executemany UPDATE by primary key
    (``updated_at`` set by its onupdate); nothing when ``rows`` is empty."""
    if not rows:
        return
    customers = table_of(Customer)
    s.connection().execute(
        update(customers).where(customers.c.id == bindparam("b_id"))
        .values(name=bindparam("b_name"), address=bindparam("b_address")),
        [{"b_id": cid, "b_name": name, "b_address": address} for cid, name, address in rows])


def insert_pulled(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert pulled data rows (``customer_id``, ``integration_id`` and ``PULLED_COLUMNS``) in
    one statement (``bulk_insert``); nothing when ``rows`` is empty."""
    bulk_insert(s, table_of(PulledData), rows)


def update_pulled(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Overwrite the ``PULLED_COLUMNS`` of existing pulled data rows (keyed by ``customer_id``,
    ``integration_id``) with one executemany UPDATE; nothing when ``rows`` is empty."""
    if not rows:
        return
    pulled = table_of(PulledData)
    s.connection().execute(
        update(pulled).where(pulled.c.customer_id == bindparam("b_customer_id"),
                             pulled.c.integration_id == bindparam("b_integration_id"))
        .values({c: bindparam(f"b_{c}") for c in PULLED_COLUMNS}),
        [{f"b_{k}": v for k, v in row.items()} for row in rows])


def insert_contacts(s: Session, model: type[CustomerEmail] | type[CustomerPhone],
                    rows: Sequence[dict[str, Any]]) -> list[bool]:
    """Insert email or phone rows in one savepoint; if one collides (another profile took its
    value since it was read), each again in its own. Whether each row was added (a profile's
    later rows move up a position for each of its rows not added)."""
    if not rows:
        return []
    table = table_of(model)
    try:
        with s.begin_nested():
            bulk_insert(s, table, rows)
        return [True] * len(rows)
    except IntegrityError:
        pass
    added = []
    lost: dict[str, int] = {}  # rows of a profile not added: later ones move up
    for row in rows:
        row = {**row, "position": row["position"] - lost.get(row["customer_id"], 0)}
        try:
            with s.begin_nested():
                s.connection().execute(insert(table), [row])
            added.append(True)
        except IntegrityError:
            added.append(False)
            lost[row["customer_id"]] = lost.get(row["customer_id"], 0) + 1
    return added
