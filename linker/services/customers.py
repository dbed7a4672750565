"""Customer profiles: create (then auto-link), find, read with links and pulled data, import CSV."""

from __future__ import annotations

import base64
import csv
import io
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.core.identity import InvalidContact, PhoneType, normalize_email, normalize_phone
from linker.core.permissions import Actor, Permission
from linker.safetext import forbidden_character
from linker.services.audit import record_audit
from linker.services.autolinking import AutolinkResult, ProfileSnapshot, autolink_customer
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput
from linker.store import customers as store
from linker.store import links as links_store
from linker.store.models import (
    Customer,
    CustomerEmail,
    CustomerPhone,
)

MAX_NAME = 200
MAX_ADDRESS = 500
MAX_EMAIL = 320
MAX_PHONE = 64
MAX_FIND_LIMIT = 500


def new_customer_id() -> str:
    """A fresh customer id: 16 random bytes as 22 base64url characters (like Gladly's)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


# -- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhoneInput:
    """A phone as entered: the number in any format and its type (MOBILE by default)."""

    number: str
    type: PhoneType | str = PhoneType.MOBILE


@dataclass(frozen=True)
class ContactData:
    """Validated, de-duplicated contact data of a new profile (emails normalised, E.164)."""

    name: str
    address: str
    emails: tuple[tuple[str, str], ...]
    """(as entered, normalised) pairs; the first is the main email."""
    phones: tuple[tuple[str, str, PhoneType], ...]
    """(as entered, E.164, type) triples."""

    @property
    def unique_values(self) -> list[str]:
        """The values that must not be on another profile: emails and MOBILE phones."""
        return [e for _, e in self.emails] + [
            p for _, p, kind in self.phones if kind is PhoneType.MOBILE]

    def display(self) -> dict[str, Any]:
        """Plain dict for audit events."""
        return {"name": self.name, "address": self.address,
                "emails": [e for _, e in self.emails],
                "phones": [{"number": p, "type": t.value} for _, p, t in self.phones]}


def validate_contact(name: str, emails: Sequence[str],
                     phones: Sequence[tuple[str, str] | PhoneInput],
                     address: str = "") -> ContactData:
    """Normalise and check a new profile's data; InvalidInput with a message per field.

    Needs a name, an email or a phone. Duplicates within the input are dropped (first wins).
    """
    problems: dict[str, list[str]] = {}
    clean_name = (name or "").strip()
    clean_address = (address or "").strip()
    if len(clean_name) > MAX_NAME:
        problems.setdefault("name", []).append(f"use at most {MAX_NAME} characters")
    if len(clean_address) > MAX_ADDRESS:
        problems.setdefault("address", []).append(f"use at most {MAX_ADDRESS} characters")
    for key, text in (("name", clean_name), ("address", clean_address)):
        if hidden := forbidden_character(text, multiline=True):
            problems.setdefault(key, []).append(f"it contains {hidden}; remove it")
    clean_emails: dict[str, str] = {}
    for raw in emails:
        if raw is None or not str(raw).strip():
            continue
        try:
            email = normalize_email(str(raw))
        except InvalidContact as exc:
            problems.setdefault("emails", []).append(str(exc))
            continue
        if len(email) > MAX_EMAIL:
            problems.setdefault("emails", []).append(f"{raw!r} is longer than {MAX_EMAIL}")
            continue
        clean_emails.setdefault(email, str(raw).strip())
    clean_phones: dict[str, tuple[str, PhoneType]] = {}
    for item in phones:
        number, kind_text = (item.number, item.type) if isinstance(item, PhoneInput) else item
        if number is None or not str(number).strip():
            continue
        kind = _phone_type(kind_text)
        if kind is None:
            problems.setdefault("phones", []).append(
                f"{kind_text!r} is not a phone type; use MOBILE, HOME, OFFICE or OTHER")
            continue
        try:
            if len(str(number)) > MAX_PHONE:
                raise InvalidContact(f"{number!r} is too long for a phone number")
            e164 = normalize_phone(str(number))
        except InvalidContact as exc:
            problems.setdefault("phones", []).append(str(exc))
            continue
        clean_phones.setdefault(e164, (str(number).strip(), kind))
    if not problems and not (clean_name or clean_emails or clean_phones):
        problems["name"] = ["give a name, an email or a phone"]
    if problems:
        raise InvalidInput({k: "; ".join(v) for k, v in problems.items()})
    return ContactData(
        name=clean_name, address=clean_address,
        emails=tuple((raw, norm) for norm, raw in clean_emails.items()),
        phones=tuple((raw, e164, kind) for e164, (raw, kind) in clean_phones.items()),
    )


def _phone_type(value: PhoneType | str | None) -> PhoneType | None:
    if isinstance(value, PhoneType):
        return value
    text = (value or "").strip().upper() or PhoneType.MOBILE.value
    try:
        return PhoneType(text)
    except ValueError:
        return None


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

CSV_COLUMNS = ("name", "email", "phone", "phone_type")
"""Columns of an import file; ``phone_type`` may be left out (MOBILE)."""


@dataclass(frozen=True)
class RejectedRow:
    """A row of an import file that was not imported, and why."""

    line: int
    """1-based line number in the file (the header is line 1)."""
    reason: str
    text: str
    """The row's values as read, joined by commas."""


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
class _CandidateRow:
    line: int
    data: ContactData
    text: str


@dataclass(frozen=True)
class _ParsedCsv:
    rows: int
    candidates: tuple[_CandidateRow, ...]
    rejected: tuple[RejectedRow, ...]


def _csv_header(row: list[str]) -> list[str]:
    columns = [c.strip().lower().lstrip("\ufeff").strip() for c in row]
    expected = ",".join(CSV_COLUMNS)
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    missing = [c for c in CSV_COLUMNS[:3] if c not in columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or missing or repeated:
        problems = ([f"unknown column(s) {', '.join(map(repr, unknown))}"] if unknown else []) + (
            [f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"repeated column(s) {', '.join(repeated)}"] if repeated else [])
        raise InvalidInput({"header": f"line 1: {'; '.join(problems)}; the first line must be "
                                      f"{expected} (phone_type optional)"})
    return columns


def _row_problem(values: dict[str, str]) -> str | ContactData:
    try:
        return validate_contact(values.get("name", ""), [values.get("email", "")],
                                [(values.get("phone", ""), values.get("phone_type", ""))])
    except InvalidInput as exc:
        labels = {"emails": "bad email", "phones": "bad phone", "name": "bad name",
                  "address": "bad address"}
        return "; ".join(f"{labels.get(k, k)}: {v}" for k, v in exc.fields.items())


MAX_IMPORT_CHARS = 20 * 1024 * 1024
MAX_IMPORT_ROWS = 50_000


def _checked(reader: Any) -> Iterator[list[str]]:
    """``reader``'s rows, at most MAX_IMPORT_ROWS; InvalidInput (naming the line) for what
    csv cannot read, e.g. a value over csv's field size limit."""
    try:
        for count, row in enumerate(reader):
            if count > MAX_IMPORT_ROWS:
                raise InvalidInput({"file": f"the file has more than {MAX_IMPORT_ROWS:,} rows; "
                                            "split it into smaller files and import each"})
            yield row
    except csv.Error as exc:
        limit = csv.field_size_limit()
        reason = (f"a value is longer than {limit:,} characters (is a quote left open?)"
                  if "field limit" in str(exc) else f"the line cannot be read as CSV ({exc})")
        raise InvalidInput({"file": f"line {reader.line_num}: {reason}; nothing was "
                                    "imported"}) from None


def _parse_csv(text: str) -> _ParsedCsv:
    """Read an import file into valid candidate rows and rejected rows (not yet checked against
    the database); InvalidInput when the file is empty, too big or its header malformed."""
    if len(text) > MAX_IMPORT_CHARS:
        raise InvalidInput({"file": f"the file has more than {MAX_IMPORT_CHARS:,} characters; "
                                    "split it into smaller files and import each"})
    reader = csv.reader(io.StringIO(text, newline=""))
    rows_read = _checked(reader)
    header_row = next(rows_read, None)
    if header_row is None or not any(c.strip() for c in header_row):
        raise InvalidInput({"header": "the file is empty or its first line is blank; the first "
                                      f"line must be {','.join(CSV_COLUMNS)}"})
    columns = _csv_header(header_row)
    candidates: list[_CandidateRow] = []
    rejected: list[RejectedRow] = []
    empty_lines: list[int] = []
    seen: dict[str, int] = {}
    rows = 0
    line = reader.line_num + 1
    for row in rows_read:
        start, line = line, reader.line_num + 1
        row_text = ",".join(row)
        if not any(v.strip() for v in row):
            empty_lines.append(start)
            continue
        # Empty rows count only when a row with data follows (trailing blank lines are ignored).
        rows += len(empty_lines) + 1
        rejected.extend(RejectedRow(n, "empty row", "") for n in empty_lines)
        empty_lines.clear()
        if len(row) < len(columns):
            absent = ", ".join(columns[len(row):])
            rejected.append(RejectedRow(start, f"missing columns: {absent} (the row has "
                                        f"{len(row)} values, the header {len(columns)})",
                                        row_text))
            continue
        if len(row) > len(columns):
            rejected.append(RejectedRow(start, f"too many values: {len(row)} (the header has "
                                        f"{len(columns)} columns)", row_text))
            continue
        checked = _row_problem({c: v.strip() for c, v in zip(columns, row, strict=True)})
        if isinstance(checked, str):
            rejected.append(RejectedRow(start, checked, row_text))
            continue
        keys = checked.unique_values or [f"row:{checked.display()}"]
        earlier = next(((k, seen[k]) for k in keys if k in seen), None)
        if earlier is not None:
            value = earlier[0] if not earlier[0].startswith("row:") else "the same values"
            rejected.append(RejectedRow(start, f"duplicate of line {earlier[1]} ({value})",
                                        row_text))
            continue
        seen.update({k: start for k in keys})
        candidates.append(_CandidateRow(start, checked, row_text))
    return _ParsedCsv(rows=rows, candidates=tuple(candidates), rejected=tuple(rejected))


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
        criterion, the newest profiles."""
        actor.require(Permission.VIEW_CUSTOMERS, "view customers")
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

    def import_csv(self, actor: Actor, text: str) -> ImportReport:
        """Create a profile per good row of a ``name,email,phone,phone_type`` CSV (no
        auto-linking: run a backfill afterwards) and report every rejected row with its line
        number and reason. InvalidInput when the header is malformed."""
        actor.require(Permission.EDIT_CUSTOMERS, "import customers")
        parsed = _parse_csv(text)
        rejected = list(parsed.rejected)
        kept: list[_CandidateRow] = []
        try:
            with self.ctx.db.session() as s:
                values = [v for row in parsed.candidates for v in row.data.unique_values]
                held = {value: (cid, cname) for value, cid, cname in _holders(s, values)}
                for row in parsed.candidates:
                    clash = next((v for v in row.data.unique_values if v in held), None)
                    if clash is not None:
                        holder_id, holder_name = held[clash]
                        rejected.append(RejectedRow(
                            row.line, _held_message(clash, holder_id, holder_name), row.text))
                        continue
                    kept.append(row)
                ids = tuple(self._insert(s, row.data).id for row in kept)
                s.flush()
                report = ImportReport(
                    rows=parsed.rows, created=ids,
                    rejected=tuple(sorted(rejected, key=lambda r: r.line)))
                record_audit(s, actor, "customer.imported", "import", f"csv:{len(ids)}",
                             None, report.counts())
        except IntegrityError:
            raise Conflict("another change added one of these emails or phones while the file "
                           "was being imported; nothing was imported, run the import again"
                           ) from None
        return report

    # -- helpers ---------------------------------------------------------------------------

    def _insert(self, s: Session, data: ContactData) -> Customer:
        now = self.ctx.now()
        customer = Customer(id=new_customer_id(), name=data.name, address=data.address,
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

    def _race_conflict(self, data: ContactData) -> Conflict:
        with self.ctx.db.session(readonly=True) as s:
            holders = _holders(s, data.unique_values)
        if holders:
            return Conflict(_held_message(*holders[0]))
        return Conflict("another profile took one of these emails or phones at the same time; "
                        "try again")


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
