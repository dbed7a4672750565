"""Links, pulled data and suppressions: the (profile, integration) pairs in the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.store.bulk import bulk_insert
from linker.store.models import Customer, Integration, Link, PulledData, Suppression, table_of


def link_of(s: Session, customer_id: str, integration_id: int, *,
            for_update: bool = False) -> Link | None:
    """The profile's link to the integration, or None (``for_update``: locked until commit)."""
    query = select(Link).where(Link.customer_id == customer_id,
                               Link.integration_id == integration_id)
    return s.scalar(query.with_for_update() if for_update else query)


def linked_pairs(s: Session, customer_ids: Sequence[str]) -> set[tuple[str, int]]:
    """(customer, integration) pairs of the given customers that have a link."""
    rows = s.execute(select(Link.customer_id, Link.integration_id)
                     .where(Link.customer_id.in_(list(customer_ids))))
    return {(c, i) for c, i in rows}


def active_links_of(s: Session, customer_id: str) -> list[tuple[Link, PulledData | None]]:
    """The profile's links to active integrations with their pulled data (None when there is
    none yet), by integration name."""
    rows = s.execute(
        select(Link, PulledData)
        .join(Integration, Integration.id == Link.integration_id)
        .outerjoin(PulledData, (PulledData.customer_id == Link.customer_id)
                   & (PulledData.integration_id == Link.integration_id))
        .where(Link.customer_id == customer_id, Integration.active.is_(True))
        .order_by(Integration.name))
    return [(link, pulled) for link, pulled in rows]


def holder_of(s: Session, integration_id: int, external_customer_id: str) -> Link | None:
    """The link holding the external record in the integration, or None."""
    return s.scalar(select(Link).where(Link.integration_id == integration_id,
                                       Link.external_customer_id == external_customer_id))


def holders_of(s: Session, integration_id: int, external_ids: Sequence[str]
               ) -> list[tuple[str, str, str]]:
    """(external id, customer id, customer name) for each of ``external_ids`` already linked."""
    if not external_ids:
        return []
    rows = s.execute(
        select(Link.external_customer_id, Customer.id, Customer.name)
        .join(Customer, Customer.id == Link.customer_id)
        .where(Link.integration_id == integration_id,
               Link.external_customer_id.in_(external_ids)))
    return [(str(ext), str(cid), str(name)) for ext, cid, name in rows]


def links_of(s: Session, customer_id: str, *, for_update: bool = False
             ) -> list[tuple[Link, Integration]]:
    """The profile's links with their integrations, by integration name."""
    query = (select(Link, Integration).join(Integration, Integration.id == Link.integration_id)
             .where(Link.customer_id == customer_id).order_by(Integration.name_key))
    if for_update:
        query = query.with_for_update(of=Link)
    return [(link, integration) for link, integration in s.execute(query)]


def pulled_of(s: Session, customer_id: str) -> list[tuple[PulledData, Integration]]:
    """The data pulled for the profile from active integrations, by integration name."""
    return [(p, i) for p, i in s.execute(
        select(PulledData, Integration)
        .join(Integration, Integration.id == PulledData.integration_id)
        .where(PulledData.customer_id == customer_id, Integration.active.is_(True))
        .order_by(Integration.name_key))]


def suppressions_of(s: Session, customer_id: str) -> list[tuple[Suppression, Integration]]:
    """The profile's auto-link suppressions with their integrations, by integration name."""
    return [(sup, i) for sup, i in s.execute(
        select(Suppression, Integration)
        .join(Integration, Integration.id == Suppression.integration_id)
        .where(Suppression.customer_id == customer_id)
        .order_by(Integration.name_key))]


def suppressed_pairs(s: Session, customer_ids: Sequence[str]) -> set[tuple[str, int]]:
    """(customer, integration) pairs of the given customers whose auto-linking is suppressed."""
    rows = s.execute(select(Suppression.customer_id, Suppression.integration_id)
                     .where(Suppression.customer_id.in_(list(customer_ids))))
    return {(c, i) for c, i in rows}


def suppression_of(s: Session, customer_id: str, integration_id: int) -> Suppression | None:
    """The pair's auto-link suppression, or None."""
    return s.get(Suppression, (customer_id, integration_id))


def unlinked_active_integrations(s: Session, customer_id: str | None) -> list[Integration]:
    """Active integrations (by name) the profile is not linked to; all active ones for None."""
    query = select(Integration).where(Integration.active.is_(True))
    if customer_id is not None:
        linked = select(Link.integration_id).where(Link.customer_id == customer_id)
        query = query.where(Integration.id.not_in(linked))
    return list(s.scalars(query.order_by(Integration.name)))


def systems(s: Session) -> list[tuple[int, str, bool]]:
    """(id, name, active) of every integration, by name."""
    rows = s.execute(select(Integration.id, Integration.name, Integration.active)
                     .order_by(Integration.name))
    return [(int(i), str(n), bool(a)) for i, n, a in rows]


def add_link(s: Session, link: Link) -> None:
    """Insert ``link`` in a savepoint, so a lost race (IntegrityError, raised to the caller)
    leaves the outer transaction usable."""
    with s.begin_nested():
        s.add(link)


def insert_links(s: Session, rows: list[dict[str, Any]]) -> list[int] | None:
    """Insert link rows (column values) in one statement in a savepoint; their ids in
    order, or None when one collides with a link already there (then none is inserted)."""
    try:
        with s.begin_nested():
            return bulk_insert(s, table_of(Link), rows, ids=True)
    except IntegrityError:
        return None


def pulled_row(s: Session, customer_id: str, integration_id: int) -> PulledData:
    """The pair's pulled data; a new, empty row added to the session when it has none."""
    pulled = s.get(PulledData, (customer_id, integration_id))
    if pulled is None:
        pulled = PulledData(customer_id=customer_id, integration_id=integration_id,
                            custom_attributes={}, transactions=[], dropped=[], last_error="")
        s.add(pulled)
    return pulled


def delete_link(s: Session, link: Link) -> bool:
    """Delete the link and its pulled data; False when another transaction removed it first
    (RETURNING tells, so a lost race is no ORM "expected to delete 1 row" warning)."""
    removed = s.execute(delete(Link).where(Link.id == link.id).returning(Link.id))
    if removed.first() is None:
        return False
    s.execute(delete(PulledData).where(PulledData.customer_id == link.customer_id,
                                       PulledData.integration_id == link.integration_id))
    s.expunge(link)
    return True


def add_suppression(s: Session, customer_id: str, integration_id: int, created_by: str,
                    created_at: datetime) -> bool:
    """Suppress auto-linking for the pair; False when it already was."""
    dialect_insert = sqlite_insert if s.get_bind().dialect.name == "sqlite" else postgresql_insert
    added = s.execute(dialect_insert(Suppression).values(
        customer_id=customer_id, integration_id=integration_id, created_by=created_by,
        created_at=created_at).on_conflict_do_nothing().returning(Suppression.customer_id))
    return added.first() is not None


def delete_suppression(s: Session, suppression: Suppression) -> None:
    """Remove the suppression (auto-linking may run again for its pair)."""
    s.delete(suppression)
