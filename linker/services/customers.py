"""Customer profiles: create (then auto-link), find, read with links and pulled data, import CSV.

The pure parts live in ``linker.core``: contact checks in ``contact``, import rows in
``csv_rows``; their names are re-exported here for callers of the service.
"""

from __future__ import annotations

import base64
import io
import itertools
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.core import csv_rows
from linker.core.contact import (
    MAX_ADDRESS,
    MAX_EMAIL,
    MAX_NAME,
    MAX_PHONE,
    ContactData,
    ContactProblems,
    PhoneInput,
    check_contact,
)
from linker.core.csv_rows import CSV_COLUMNS, CandidateRow, RejectedRow
from linker.core.identity import InvalidContact, normalize_email, normalize_phone
from linker.core.permissions import Actor, Permission
from linker.csvexport import pasted_value
from linker.services.audit import record_audit
from linker.services.autolinking import AutolinkResult, ProfileSnapshot, autolink_customer
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput
from linker.store import customers as store
from linker.store import links as links_store
from linker.store.models import Customer

MAX_FIND_LIMIT = 500


def new_customer_id() -> str:
    """A fresh customer id: 16 random bytes as 22 base64url characters (like Gladly's)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


# -- inputs ----------------------------------------------------------------------------------


def validate_contact(name: str, emails: Sequence[str],
                     phones: Sequence[tuple[str, str] | PhoneInput],
                     address: str = "") -> ContactData:
    """Normalise and check a new profile's data (``linker.core.contact.check_contact``);
    InvalidInput with a message per field."""
    try:
        return check_contact(name, emails, phones, address)
    except ContactProblems as exc:
        raise InvalidInput(exc.fields) from None


# -- views -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailView:
    """One email of a profile."""

    address: str
    normalized: str
    main: bool
    source: str
    """Empty when entered locally, else the integration it was pulled from."""


@dataclass(frozen=True)
class PhoneView:
    """One phone of a profile, in E.164, with its type."""

    number: str
    e164: str
    type: str
    source: str


@dataclass(frozen=True)
class LinkView:
    """A link of the profile to one integration."""

    integration_id: int
    integration_name: str
    external_customer_id: str
    method: str
    created_by: str
    created_at: datetime
    integration_active: bool


@dataclass(frozen=True)
class PulledDataView:
    """What the last DETAILED lookup of one active integration returned for the profile."""

    integration_id: int
    integration_name: str
    name: str | None
    address: str | None
    custom_attributes: dict[str, Any]
    transactions: tuple[dict[str, Any], ...]
    fetched_at: datetime | None
    last_attempt_at: datetime | None
    dropped: tuple[dict[str, Any], ...]
    last_error: str
    exchange_id: int | None


@dataclass(frozen=True)
class SuppressionView:
    """Auto-linking to this integration is suppressed for the profile (it was unlinked)."""

    integration_id: int
    integration_name: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class CustomerView:
    """A profile with its contact data, links, pulled data and suppressions."""

    id: str
    name: str
    address: str
    emails: tuple[EmailView, ...]
    phones: tuple[PhoneView, ...]
    custom_attributes: dict[str, Any]
    links: tuple[LinkView, ...]
    pulled: tuple[PulledDataView, ...]
    suppressions: tuple[SuppressionView, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def main_email(self) -> str | None:
        """The main (first) email, or None."""
        return self.emails[0].normalized if self.emails else None

    @property
    def active_links(self) -> tuple[LinkView, ...]:
        """Links to active integrations (the others are dormant)."""
        return tuple(link for link in self.links if link.integration_active)

    def display(self) -> dict[str, Any]:
        """Plain dict for audit events."""
        return {"name": self.name, "address": self.address,
                "emails": [e.normalized for e in self.emails],
                "phones": [{"number": p.e164, "type": p.type} for p in self.phones]}


@dataclass(frozen=True)
class CustomerSummary:
    """One row of a customer search."""

    id: str
    name: str
    main_email: str | None
    phones: tuple[str, ...]
    linked_systems: tuple[str, ...]
    """Names of the active integrations the profile is linked to."""
    created_at: datetime


@dataclass(frozen=True)
class CreatedCustomer:
    """A new profile as it is after auto-linking, and what each auto-link attempt did."""

    customer: CustomerView
    autolink: tuple[AutolinkResult, ...] = field(default_factory=tuple)


# -- CSV import ------------------------------------------------------------------------------

IMPORT_BATCH = 1000
"""Rows written per transaction by ``import_csv``."""


@dataclass(frozen=True)
class ImportReport:
    """What an import did: the ids of the profiles created and every rejected row."""

    rows: int
    created: tuple[str, ...]
    rejected: tuple[RejectedRow, ...]

    @property
    def ok(self) -> bool:
        """True when no row was rejected."""
        return not self.rejected

    def counts(self) -> dict[str, int]:
        """Row, created and rejected counts (for audit events and summaries)."""
        return {"rows": self.rows, "created": len(self.created), "rejected": len(self.rejected)}


@dataclass(frozen=True)
class ImportProgress:
    """How far an import is, after each batch it committed."""

    rows_done: int
    rows_total: int
    created: int
    rejected: int
    last_line: int
    """The file line of the last row committed."""


# -- the service -----------------------------------------------------------------------------


class CustomerService:
    """Create, find, read and import customer profiles."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def create(self, actor: Actor, name: str, emails: Sequence[str] = (),
               phones: Sequence[tuple[str, str] | PhoneInput] = (),
               address: str = "") -> CreatedCustomer:
        """Create a profile, then auto-link it to every eligible integration.

        InvalidInput for bad values; Conflict when an email or MOBILE phone is on another
        profile (the message names it).
        """
        actor.require(Permission.EDIT_CUSTOMERS, "create customers")
        data = validate_contact(name, emails, phones, address)
        try:
            with self.ctx.db.session() as s:
                holders = _holders(s, data.unique_values)
                if holders:
                    value, holder_id, holder_name = holders[0]
                    raise Conflict(_held_message(value, holder_id, holder_name))
                customer = self._insert(s, data)
                record_audit(s, actor, "customer.created", "customer", customer.id, None,
                             data.display())
                customer_id = customer.id
                snapshot = ProfileSnapshot.of(customer)
        except IntegrityError:
            raise self._race_conflict(data) from None
        results = autolink_customer(self.ctx, actor, customer_id, trigger="customer_created",
                                    profile=snapshot)
        with self.ctx.db.session(readonly=True) as s:
            view = _customer_view(s, _load(s, customer_id))
        return CreatedCustomer(customer=view, autolink=tuple(results))

    def find(self, actor: Actor, *, email: str | None = None, phone: str | None = None,
             name: str | None = None, limit: int = 50) -> list[CustomerSummary]:
        """Profiles matching every criterion given (newest first): email exact on the normalised
        form, phone exact on E.164 (any type), name case-insensitive substring. With no
        criterion, the newest profiles. A value pasted from a CSV export keeps working: its
        formula-neutralising apostrophe is dropped (``csvexport.pasted_value``)."""
        actor.require(Permission.VIEW_CUSTOMERS, "view customers")
        email, phone, name = (None if v is None else pasted_value(v.strip())
                              for v in (email, phone, name))
        normalized = e164 = None
        if email is not None and email.strip():
            try:
                normalized = normalize_email(email)
            except InvalidContact as exc:
                raise InvalidInput({"email": str(exc)}) from None
        if phone is not None and phone.strip():
            try:
                e164 = normalize_phone(phone)
            except InvalidContact as exc:
                raise InvalidInput({"phone": str(exc)}) from None
        name_part = name.strip() if name is not None and name.strip() else None
        limit = max(1, min(int(limit), MAX_FIND_LIMIT))
        with self.ctx.db.session(readonly=True) as s:
            customers = store.find(s, email_key=normalized, e164=e164, name_part=name_part,
                                   limit=limit)
            return _summaries(s, customers)

    def get(self, actor: Actor, customer_id: str) -> CustomerView:
        """The profile with emails (main first), phones, links, pulled data of active
        integrations and suppressions. A pure read: no lookup is made."""
        actor.require(Permission.VIEW_CUSTOMERS, "view customers")
        with self.ctx.db.session(readonly=True) as s:
            return _customer_view(s, _load(s, customer_id))

    def import_csv(self, actor: Actor, source: str | TextIO, *,
                   progress: Callable[[ImportProgress], None] | None = None,
                   batch_size: int = IMPORT_BATCH) -> ImportReport:
        """Create a profile per good row of a ``name,email,phone,phone_type`` CSV (no
        auto-linking: run a backfill afterwards) and report every rejected row with its line
        number and reason.

        ``source`` is the text or a seekable text stream (opened with ``newline=""``). The
        file is read twice, never held whole: first to refuse a malformed header, unreadable
        CSV or a file over the caps (InvalidInput, nothing imported), then in batches of
        ``batch_size`` rows, each written in its own transaction with its own
        ``customer.imported`` audit event; ``progress`` is called after each batch.
        """
        actor.require(Permission.EDIT_CUSTOMERS, "import customers")
        stream = io.StringIO(source, newline="") if isinstance(source, str) else source
        if not stream.seekable():
            raise InvalidInput({"file": "the import needs a file it can read twice (seekable); "
                                        "save it to disk and import the file"})
        start = stream.tell()
        try:
            total = csv_rows.check_file(stream)
        except csv_rows.CsvFileProblem as exc:
            raise InvalidInput({exc.field: f"{exc}; nothing was imported"}) from None
        stream.seek(start)
        created: list[str] = []
        rejected: list[RejectedRow] = []
        rows = 0
        try:
            for batch in _batches(csv_rows.read_rows(stream), max(1, batch_size)):
                batch_created, batch_rejected = self._import_batch(actor, batch, rows, created)
                rows += len(batch)
                created.extend(batch_created)
                rejected.extend(batch_rejected)
                if progress is not None:
                    progress(ImportProgress(rows_done=rows, rows_total=total,
                                            created=len(created), rejected=len(rejected),
                                            last_line=batch[-1].line))
        except csv_rows.CsvFileProblem as exc:  # the file changed after it was checked
            raise InvalidInput({exc.field: f"{exc}; {_imported_so_far(rows, created)}"}
                               ) from None
        return ImportReport(rows=rows, created=tuple(created),
                            rejected=tuple(sorted(rejected, key=lambda r: r.line)))

    def _import_batch(self, actor: Actor, batch: Sequence[CandidateRow | RejectedRow],
                      rows_before: int, created_before: Sequence[str]
                      ) -> tuple[list[str], list[RejectedRow]]:
        """Write one batch in one transaction (retried once when a concurrent change took one
        of its values); its created ids and rejected rows."""
        for attempt in (1, 2):
            try:
                with self.ctx.db.session() as s:
                    return self._write_batch(s, actor, batch)
            except IntegrityError:
                if attempt == 2:
                    raise Conflict(
                        f"another change added one of the emails or phones of lines "
                        f"{batch[0].line}-{batch[-1].line} while they were being imported; "
                        f"{_imported_so_far(rows_before, created_before)}: import the file "
                        "again (rows already imported are then reported as already on a "
                        "profile)") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_batch(self, s: Session, actor: Actor,
                     batch: Sequence[CandidateRow | RejectedRow]
                     ) -> tuple[list[str], list[RejectedRow]]:
        rejected = [row for row in batch if isinstance(row, RejectedRow)]
        candidates = [row for row in batch if isinstance(row, CandidateRow)]
        values = [v for row in candidates for v in row.data.unique_values]
        held = {value: (cid, cname) for value, cid, cname in _holders(s, values)}
        kept: list[CandidateRow] = []
        for row in candidates:
            clash = next((v for v in row.data.unique_values if v in held), None)
            if clash is None:
                kept.append(row)
                continue
            holder_id, holder_name = held[clash]
            rejected.append(RejectedRow(row.line, _held_message(clash, holder_id, holder_name),
                                        row.text))
        ids = _bulk_insert(s, [row.data for row in kept], self.ctx.now())
        record_audit(s, actor, "customer.imported", "import",
                     f"csv:lines {batch[0].line}-{batch[-1].line}", None,
                     {"rows": len(batch), "created": len(ids), "rejected": len(rejected)})
        return ids, rejected

    # -- helpers ---------------------------------------------------------------------------

    def _insert(self, s: Session, data: ContactData) -> Customer:
        return store.add_one(s, new_customer_id(), data, self.ctx.now())

    def _race_conflict(self, data: ContactData) -> Conflict:
        with self.ctx.db.session(readonly=True) as s:
            holders = _holders(s, data.unique_values)
        if holders:
            return Conflict(_held_message(*holders[0]))
        return Conflict("another profile took one of these emails or phones at the same time; "
                        "try again")


def _batches(rows: Iterable[CandidateRow | RejectedRow], size: int
             ) -> Iterator[tuple[CandidateRow | RejectedRow, ...]]:
    """``rows`` in tuples of ``size`` (the last may be shorter), read as they are needed."""
    iterator = iter(rows)
    while batch := tuple(itertools.islice(iterator, size)):
        yield batch


def _imported_so_far(rows: int, created: Sequence[str]) -> str:
    if not rows:
        return "nothing was imported"
    return f"the first {rows:,} rows were imported ({len(created):,} profiles created)"


def _bulk_insert(s: Session, contacts: Sequence[ContactData], now: datetime) -> list[str]:
    """Insert profiles with their emails and phones; their new ids."""
    ids = [new_customer_id() for _ in contacts]
    store.insert_many(s, ids, contacts, now)
    return ids


# -- queries ---------------------------------------------------------------------------------


def _held_message(value: str, holder_id: str, holder_name: str) -> str:
    who = holder_name or "a profile without a name"
    return f"{value} is already on the profile of {who} (id {holder_id})"


_holders = store.holders  # the name import_csv uses
_load = store.load


def _summaries(s: Session, customers: list[Customer]) -> list[CustomerSummary]:
    parts = store.summary_parts(s, [c.id for c in customers])
    return [CustomerSummary(id=c.id, name=c.name, main_email=parts.main_email.get(c.id),
                            phones=tuple(parts.phones.get(c.id, ())),
                            linked_systems=tuple(parts.linked_systems.get(c.id, ())),
                            created_at=c.created_at)
            for c in customers]


def _customer_view(s: Session, customer: Customer) -> CustomerView:
    links = [
        LinkView(integration_id=i.id, integration_name=i.name,
                 external_customer_id=link.external_customer_id, method=link.method,
                 created_by=link.created_by, created_at=link.created_at,
                 integration_active=i.active)
        for link, i in links_store.links_of(s, customer.id)]
    pulled = [
        PulledDataView(integration_id=i.id, integration_name=i.name, name=p.name,
                       address=p.address, custom_attributes=dict(p.custom_attributes or {}),
                       transactions=tuple(dict(t) for t in p.transactions or ()),
                       fetched_at=p.fetched_at, last_attempt_at=p.last_attempt_at,
                       dropped=tuple(dict(d) for d in p.dropped or ()),
                       last_error=p.last_error, exchange_id=p.exchange_id)
        for p, i in links_store.pulled_of(s, customer.id)]
    suppressions = [
        SuppressionView(integration_id=i.id, integration_name=i.name, created_by=sup.created_by,
                        created_at=sup.created_at)
        for sup, i in links_store.suppressions_of(s, customer.id)]
    return CustomerView(
        id=customer.id, name=customer.name, address=customer.address,
        emails=tuple(EmailView(address=e.original, normalized=e.normalized, main=i == 0,
                               source=e.source) for i, e in enumerate(customer.emails)),
        phones=tuple(PhoneView(number=p.original, e164=p.e164, type=p.type, source=p.source)
                     for p in customer.phones),
        custom_attributes=dict(customer.custom_attributes or {}),
        links=tuple(links), pulled=tuple(pulled), suppressions=tuple(suppressions),
        created_at=customer.created_at, updated_at=customer.updated_at)


__all__ = ["CSV_COLUMNS", "MAX_ADDRESS", "MAX_EMAIL", "MAX_NAME", "MAX_PHONE", "ContactData",
           "CreatedCustomer", "CustomerService", "CustomerSummary", "CustomerView",
           "EmailView", "ImportProgress", "ImportReport", "LinkView", "PhoneInput",
           "PhoneView", "PulledDataView", "RejectedRow", "SuppressionView", "new_customer_id",
           "validate_contact"]
