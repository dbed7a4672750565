"""The customers aggregate in the database: loads, finds and who holds an email or mobile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from linker.core.contact import ContactData
from linker.core.errors import NotFound
from linker.core.identity import PhoneType
from linker.store.models import Customer, CustomerEmail, CustomerPhone, Integration, Link

HOLDER_CHUNK = 500
"""Values per holder query (under every database's bound-parameter limit)."""


def load(s: Session, customer_id: str) -> Customer:
    """The profile with ``customer_id``; NotFound when there is none."""
    customer = s.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"no customer with id {customer_id!r}; search by email, phone or name")
    return customer


def get(s: Session, customer_id: str) -> Customer | None:
    """The profile with ``customer_id``, or None."""
    return s.get(Customer, customer_id)


def with_contacts(s: Session, customer_id: str) -> Customer | None:
    """The profile with its emails and phones loaded, or None."""
    return s.scalar(select(Customer).where(Customer.id == customer_id).options(
        selectinload(Customer.emails), selectinload(Customer.phones)))


@dataclass
class ProfileContacts:
    """A profile's own values with its emails and phones, read with Core (no ORM objects)."""

    name: str
    custom_attributes: dict[str, object]
    emails: list[tuple[str, str]] = field(default_factory=list)
    """(as entered, normalised), in position order."""
    phones: list[tuple[str, str]] = field(default_factory=list)
    """(E.164, type), in position order."""


def many_with_contacts(s: Session, customer_ids: Sequence[str]) -> dict[str, ProfileContacts]:
    """The given profiles with their emails and phones, by id (missing ids are left out):
    three column reads (no ORM objects; pending changes are flushed first), for hot paths
    that plan many profiles (the backfill)."""
    ids = list(customer_ids)
    found = {cid: ProfileContacts(name or "", dict(attributes or {}))
             for cid, name, attributes in s.execute(
                 select(Customer.id, Customer.name, Customer.custom_attributes)
                 .where(Customer.id.in_(ids)))}
    for cid, original, normalized in s.execute(
            select(CustomerEmail.customer_id, CustomerEmail.original, CustomerEmail.normalized)
            .where(CustomerEmail.customer_id.in_(ids))
            .order_by(CustomerEmail.customer_id, CustomerEmail.position, CustomerEmail.id)):
        if cid in found:
            found[cid].emails.append((original, normalized))
    for cid, e164, kind in s.execute(
            select(CustomerPhone.customer_id, CustomerPhone.e164, CustomerPhone.type)
            .where(CustomerPhone.customer_id.in_(ids))
            .order_by(CustomerPhone.customer_id, CustomerPhone.position, CustomerPhone.id)):
        if cid in found:
            found[cid].phones.append((e164, kind))
    return found


def find(s: Session, *, email_key: str | None = None, e164: str | None = None,
         name_part: str | None = None, limit: int) -> list[Customer]:
    """Profiles with the normalised email, the E.164 phone (any type) and a name containing
    ``name_part`` (ignoring case), every criterion given; newest first."""
    query = select(Customer)
    if email_key is not None:
        query = query.where(Customer.id.in_(
            select(CustomerEmail.customer_id).where(CustomerEmail.normalized == email_key)))
    if e164 is not None:
        query = query.where(Customer.id.in_(
            select(CustomerPhone.customer_id).where(CustomerPhone.e164 == e164)))
    if name_part is not None:
        query = query.where(func.lower(Customer.name).contains(name_part.lower(),
                                                                autoescape=True))
    query = query.order_by(Customer.created_at.desc(), Customer.id).limit(limit)
    return list(s.scalars(query))


def holders(s: Session, values: Sequence[str]) -> list[tuple[str, str, str]]:
    """(value, customer id, customer name) for each normalised email / E.164 MOBILE phone
    among ``values`` already on a profile, in the order of ``values``."""
    wanted = list(dict.fromkeys(values))
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(wanted), HOLDER_CHUNK):
        chunk = wanted[start:start + HOLDER_CHUNK]
        rows = s.execute(
            select(CustomerEmail.normalized, Customer.id, Customer.name)
            .join(Customer, Customer.id == CustomerEmail.customer_id)
            .where(CustomerEmail.normalized.in_(chunk))
            .union_all(
                select(CustomerPhone.mobile_key, Customer.id, Customer.name)
                .join(Customer, Customer.id == CustomerPhone.customer_id)
                .where(CustomerPhone.mobile_key.in_(chunk))))
        for value, cid, cname in rows:
            found[str(value)] = (cid, cname)
    return [(v, *found[v]) for v in wanted if v in found]


def add_contact(s: Session, row: CustomerEmail | CustomerPhone) -> bool:
    """Add an email or phone row in a savepoint; False (nothing added) when another profile
    took its value meanwhile."""
    try:
        with s.begin_nested():
            s.add(row)
    except IntegrityError:
        return False
    return True


def remove_pulled_contacts(s: Session, customer_id: str, source: str
                           ) -> tuple[list[str], list[str]]:
    """Delete the profile's emails and phones pulled from ``source`` (an integration's name),
    never those entered locally (empty source); the (emails, E.164 phones) deleted."""
    if not source:
        return [], []
    emails = s.scalars(delete(CustomerEmail).where(
        CustomerEmail.customer_id == customer_id, CustomerEmail.source == source)
        .returning(CustomerEmail.original)).all()
    phones = s.scalars(delete(CustomerPhone).where(
        CustomerPhone.customer_id == customer_id, CustomerPhone.source == source)
        .returning(CustomerPhone.e164)).all()
    return list(emails), list(phones)


@dataclass(frozen=True)
class SummaryParts:
    """What a list of profiles shows besides the name: by customer id."""

    main_email: dict[str, str]
    phones: dict[str, list[str]]
    linked_systems: dict[str, list[str]]
    """Names of the active integrations each profile is linked to, by name."""


def summary_parts(s: Session, ids: Sequence[str]) -> SummaryParts:
    """The main email, the phones (E.164) and the linked active systems of each profile."""
    parts = SummaryParts({}, {}, {})
    if not ids:
        return parts
    for cid, norm in s.execute(
            select(CustomerEmail.customer_id, CustomerEmail.normalized)
            .where(CustomerEmail.customer_id.in_(ids))
            .order_by(CustomerEmail.position, CustomerEmail.id)):
        parts.main_email.setdefault(cid, norm)
    for cid, e164 in s.execute(
            select(CustomerPhone.customer_id, CustomerPhone.e164)
            .where(CustomerPhone.customer_id.in_(ids))
            .order_by(CustomerPhone.position, CustomerPhone.id)):
        parts.phones.setdefault(cid, []).append(e164)
    for cid, iname in s.execute(
            select(Link.customer_id, Integration.name)
            .join(Integration, Integration.id == Link.integration_id)
            .where(Link.customer_id.in_(ids), Integration.active.is_(True))
            .order_by(Integration.name_key)):
        parts.linked_systems.setdefault(cid, []).append(iname)
    return parts


def add_one(s: Session, customer_id: str, data: ContactData, now: datetime) -> Customer:
    """Add a profile with its emails and phones to the session; the new Customer."""
    customer = Customer(id=customer_id, name=data.name, address=data.address,
                        custom_attributes={}, created_at=now, updated_at=now)
    customer.emails = [
        CustomerEmail(original=raw, normalized=norm, position=i, source="")
        for i, (raw, norm) in enumerate(data.emails)]
    customer.phones = [
        CustomerPhone(original=raw, e164=e164, type=kind.value,
                      mobile_key=e164 if kind is PhoneType.MOBILE else None, position=i,
                      source="")
        for i, (raw, e164, kind) in enumerate(data.phones)]
    s.add(customer)
    return customer


def insert_many(s: Session, ids: Sequence[str], contacts: Sequence[ContactData],
                now: datetime) -> None:
    """Insert profiles ``ids`` with their emails and phones in three statements."""
    if not ids:
        return
    s.execute(insert(Customer), [
        {"id": cid, "name": c.name, "address": c.address, "custom_attributes": {},
         "created_at": now, "updated_at": now} for cid, c in zip(ids, contacts, strict=True)])
    emails = [{"customer_id": cid, "original": raw, "normalized": norm, "position": i,
               "source": ""}
              for cid, c in zip(ids, contacts, strict=True)
              for i, (raw, norm) in enumerate(c.emails)]
    phones = [{"customer_id": cid, "original": raw, "e164": e164, "type": kind.value,
               "mobile_key": e164 if kind is PhoneType.MOBILE else None, "position": i,
               "source": ""}
              for cid, c in zip(ids, contacts, strict=True)
              for i, (raw, e164, kind) in enumerate(c.phones)]
    if emails:
        s.execute(insert(CustomerEmail), emails)
    if phones:
        s.execute(insert(CustomerPhone), phones)
