"""Detailed refresh: fetch a linked record with a DETAILED lookup and apply it to the profile.

A refresh runs in three steps so that no database session is held open across an adaptor call:

1. ``plan_refresh`` reads the link, the profile and the integration and builds the request;
2. the lookup runs (several at once through the fan-out when a profile has several links);
3. ``apply_refresh`` stores the exchange and applies the answer with the rules of
   ``linker.core.merge`` (contract section 4). On failure the old pulled data is kept and
   the error is stored on it (``last_error``, ``last_attempt_at``).

``refresh_pairs`` runs the three steps with short sessions of its own; ``refresh_link`` runs
them inside a session the caller already holds (simpler, but that session stays open during
the adaptor call). Inactive integrations never get a lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.contract import CustomerProfile, LookupRequest, RequestKind, detailed_request
from linker.core.identity import PhoneType, parse_phone_type
from linker.core.merge import (
    DroppedContact,
    MergeResult,
    NewEmail,
    NewPhone,
    ProfilePhone,
    ProfileValues,
    contact_keys,
    describe_profile,
    merge_detailed,
)
from linker.core.permissions import Actor, Permission
from linker.lookup.exchange import Exchange, Trigger
from linker.lookup.fanout import lookup_many_sync
from linker.lookup.target import AdaptorTarget, InvalidTarget
from linker.services.audit import audit_row, insert_audit_rows, record_audit
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, NotFound
from linker.services.targets import target_for
from linker.store.exchanges import exchange_row, insert_exchanges, record_exchange
from linker.store.models import (
    Customer,
    CustomerEmail,
    CustomerPhone,
    Integration,
    Link,
    PulledData,
    table_of,
)

REFRESHED = "refreshed"
FAILED = "failed"
SKIPPED = "skipped"


@dataclass(frozen=True)
class RefreshOutcome:
    """What one detailed refresh of a (profile, integration) link did."""

    customer_id: str
    integration_id: int
    integration_name: str
    external_customer_id: str
    status: str
    """``refreshed``, ``failed`` (old data kept) or ``skipped`` (no lookup was made)."""
    message: str = ""
    error_kind: str | None = None
    exchange_id: int | None = None
    fetched_at: datetime | None = None
    changed: tuple[str, ...] = ()
    """The profile's own fields the refresh overwrote (``name``, ``address``)."""
    emails_added: tuple[str, ...] = ()
    phones_added: tuple[str, ...] = ()
    dropped: tuple[DroppedContact, ...] = ()
    custom_attribute_count: int = 0
    transaction_count: int = 0

    @property
    def ok(self) -> bool:
        """True when fresh data was applied."""
        return self.status == REFRESHED

    @property
    def error(self) -> str | None:
        """Why no fresh data was applied (None when it was)."""
        return None if self.ok else (self.message or self.status)


@dataclass(frozen=True)
class RefreshPlan:
    """Everything a refresh needs from the database, read before the adaptor call."""

    customer_id: str
    integration_id: int
    integration_name: str
    external_customer_id: str
    target: AdaptorTarget | None
    request: LookupRequest
    problem: str = ""
    """Why no lookup can be made (an unusable adaptor setting); empty when it can."""


def plan_refresh(ctx: ServiceContext, link: Link) -> RefreshPlan | None:
    """The DETAILED request for a link, or None when its integration is inactive.

    The request carries the profile's id, name, emails (normalised, main first), phones
    (E.164) and own custom attributes flat.
    """
    integration = link.integration
    if not integration.active:
        return None
    customer = link.customer
    request = detailed_request(
        customer.id,
        link.external_customer_id,
        name=customer.name or None,
        emails=[e.normalized for e in customer.emails],
        phones=[p.e164 for p in customer.phones],
        custom_attributes={str(k): str(v) for k, v in (customer.custom_attributes or {}).items()},
    )
    try:
        target: AdaptorTarget | None = target_for(integration, ctx.secrets)
        problem = ""
    except InvalidTarget as exc:
        target, problem = None, f"{integration.name} cannot be called: {exc}"
    return RefreshPlan(customer.id, integration.id, integration.name, link.external_customer_id,
                       target, request, problem)


def is_stale(pulled: PulledData | None, now: datetime, ttl_s: float) -> bool:
    """True when there is no successfully pulled data or it is older than ``ttl_s`` seconds."""
    if pulled is None or pulled.fetched_at is None:
        return True
    return now - pulled.fetched_at > timedelta(seconds=ttl_s)


def _outcome(plan: RefreshPlan, status: str, **fields: Any) -> RefreshOutcome:
    return RefreshOutcome(plan.customer_id, plan.integration_id, plan.integration_name,
                          plan.external_customer_id, status, **fields)


def _pulled_row(session: Session, customer_id: str, integration_id: int) -> PulledData:
    pulled = session.get(PulledData, (customer_id, integration_id))
    if pulled is None:
        pulled = PulledData(customer_id=customer_id, integration_id=integration_id,
                            custom_attributes={}, transactions=[], dropped=[], last_error="")
        session.add(pulled)
    return pulled


def _held_elsewhere(session: Session, customer_id: str, emails: frozenset[str],
                    mobiles: frozenset[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Which of these emails / MOBILE numbers other profiles hold, and a description of them."""
    held_emails: dict[str, str] = {}
    held_mobiles: dict[str, str] = {}
    if emails:
        rows = session.execute(
            select(CustomerEmail.normalized, Customer.name, Customer.id)
            .join(Customer, Customer.id == CustomerEmail.customer_id)
            .where(CustomerEmail.normalized.in_(emails), Customer.id != customer_id))
        held_emails = {value: describe_profile(name, cid) for value, name, cid in rows}
    if mobiles:
        rows = session.execute(
            select(CustomerPhone.mobile_key, Customer.name, Customer.id)
            .join(Customer, Customer.id == CustomerPhone.customer_id)
            .where(CustomerPhone.mobile_key.in_(mobiles), Customer.id != customer_id))
        held_mobiles = {value: describe_profile(name, cid) for value, name, cid in rows
                        if value is not None}
    return held_emails, held_mobiles


def _insert_or_drop(session: Session, row: CustomerEmail | CustomerPhone) -> bool:
    """Add a contact row in a savepoint; False when another profile took it meanwhile."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def _apply_contacts(session: Session, customer: Customer, merge: MergeResult, source: str
                    ) -> tuple[list[str], list[str], list[DroppedContact]]:
    emails_added: list[str] = []
    phones_added: list[str] = []
    dropped = list(merge.dropped)
    taken = "another profile took this value at the same time; it was not added"
    position = max((e.position for e in customer.emails), default=-1) + 1
    for email in merge.add_emails:
        email_row = CustomerEmail(customer_id=customer.id, original=email.original,
                                  normalized=email.normalized, position=position, source=source)
        if _insert_or_drop(session, email_row):
            emails_added.append(email.original)
            position += 1
        else:
            dropped.append(DroppedContact(email.original, "email", taken))
    position = max((p.position for p in customer.phones), default=-1) + 1
    for phone in merge.add_phones:
        mobile_key = phone.e164 if phone.type is PhoneType.MOBILE else None
        phone_row = CustomerPhone(customer_id=customer.id, original=phone.original,
                                  e164=phone.e164, type=phone.type.value, mobile_key=mobile_key,
                                  position=position, source=source)
        if _insert_or_drop(session, phone_row):
            phones_added.append(phone.e164)
            position += 1
        else:
            dropped.append(DroppedContact(phone.original, "phone", taken))
    session.expire(customer, ["emails", "phones"])
    return emails_added, phones_added, dropped


def _profile_values(customer: Customer) -> ProfileValues:
    return ProfileValues(
        name=customer.name or "",
        address=customer.address or "",
        emails=frozenset(e.normalized for e in customer.emails),
        phones=tuple(ProfilePhone(p.e164, _phone_type(p.type)) for p in customer.phones),
    )


def _phone_type(value: str) -> PhoneType:
    return parse_phone_type(value) or PhoneType.OTHER


def _apply_success(ctx: ServiceContext, session: Session, actor: Actor, plan: RefreshPlan,
                   exchange: Exchange, exchange_id: int) -> RefreshOutcome:
    customer = session.get(Customer, plan.customer_id)
    integration = session.get(Integration, plan.integration_id)
    if customer is None or integration is None:  # deleted during the lookup
        return _outcome(plan, SKIPPED, message="the profile or integration no longer exists",
                        exchange_id=exchange_id)
    result = exchange.results[0]
    pulled = _pulled_row(session, customer.id, integration.id)
    keys = contact_keys(result)
    held_emails, held_mobiles = _held_elsewhere(session, customer.id, keys.emails, keys.mobiles)
    merge = merge_detailed(_profile_values(customer), dict(pulled.custom_attributes or {}),
                           result, overwrite_existing=integration.overwrite_existing,
                           emails_held_elsewhere=held_emails,
                           mobiles_held_elsewhere=held_mobiles)
    before = {"name": customer.name, "address": customer.address}
    changed = []
    if merge.name is not None:
        customer.name = merge.name
        changed.append("name")
    if merge.address is not None:
        customer.address = merge.address
        changed.append("address")
    emails_added, phones_added, dropped = _apply_contacts(session, customer, merge,
                                                          integration.name)
    now = ctx.now()
    pulled.name = merge.pulled_name
    pulled.address = merge.pulled_address
    pulled.custom_attributes = merge.custom_attributes
    pulled.transactions = merge.transactions
    pulled.dropped = [d.as_dict() for d in dropped]
    pulled.fetched_at = now
    pulled.last_attempt_at = now
    pulled.last_error = ""
    pulled.exchange_id = exchange_id
    if changed or emails_added or phones_added:
        after: dict[str, object] = {field: getattr(customer, field) for field in changed}
        after.update(integration=integration.name, emails_added=emails_added,
                     phones_added=phones_added)
        record_audit(session, actor, "customer.refreshed", "customer", customer.id,
                     {field: before[field] for field in changed}, after)
    return _outcome(plan, REFRESHED, exchange_id=exchange_id, fetched_at=now,
                    changed=tuple(changed), emails_added=tuple(emails_added),
                    phones_added=tuple(phones_added), dropped=tuple(dropped),
                    custom_attribute_count=len(merge.custom_attributes),
                    transaction_count=len(merge.transactions))


def _failure(exchange: Exchange | None, plan: RefreshPlan) -> tuple[str | None, str]:
    """The error kind and message of a failed refresh (None when it did not fail)."""
    if exchange is None:
        return "config", plan.problem
    if exchange.error is not None:
        return exchange.error.kind.value, exchange.error.message
    if len(exchange.results) != 1:
        return "contract", (f"the adaptor returned {len(exchange.results)} results; a DETAILED "
                            "lookup needs exactly one")
    returned = exchange.results[0].external_customer_id
    if returned != plan.external_customer_id:
        return "contract", (f"the adaptor returned record {returned!r} but this profile is linked "
                            f"to {plan.external_customer_id!r}; fix the adaptor's DETAILED "
                            "lookup to find the record by externalCustomerId")
    return None, ""


def apply_refresh(ctx: ServiceContext, session: Session, actor: Actor, plan: RefreshPlan,
                  exchange: Exchange | None) -> RefreshOutcome:
    """Store the exchange and apply its answer (or its failure) to the profile.

    ``exchange`` is None when no lookup could be made (``plan.problem``). Nothing is applied
    when the link was removed or re-pointed to another record during the lookup.
    """
    exchange_id = None
    if exchange is not None:
        exchange_id = record_exchange(session, exchange, integration_id=plan.integration_id,
                                      customer_id=plan.customer_id,
                                      actor=actor.username).id
    # FOR UPDATE: refreshes of one pair (and an unlink) apply one after the other
    link = session.scalar(select(Link).where(Link.customer_id == plan.customer_id,
                                             Link.integration_id == plan.integration_id)
                          .with_for_update())
    if link is None or link.external_customer_id != plan.external_customer_id:
        return _outcome(plan, SKIPPED, exchange_id=exchange_id,
                        message="the link changed during the lookup; its answer was not applied")
    kind, message = _failure(exchange, plan)
    if kind is None and exchange is not None and exchange_id is not None:
        return _apply_success(ctx, session, actor, plan, exchange, exchange_id)
    pulled = _pulled_row(session, plan.customer_id, plan.integration_id)
    pulled.last_error = message
    pulled.last_attempt_at = ctx.now()
    return _outcome(plan, FAILED, message=message, error_kind=kind, exchange_id=exchange_id,
                    fetched_at=pulled.fetched_at)


def refresh_link(ctx: ServiceContext, session: Session, actor: Actor, link: Link, *,
                 trigger: Trigger) -> RefreshOutcome:
    """DETAILED lookup of one link, applied and recorded inside the caller's session.

    The session stays open during the adaptor call; prefer ``refresh_pairs`` outside a session.
    An inactive integration gets no lookup (``skipped``).
    """
    plan = plan_refresh(ctx, link)
    if plan is None:
        return _inactive_outcome(link)
    exchange = None
    if plan.target is not None:
        exchange = ctx.client.lookup_sync(plan.target, plan.request, kind=RequestKind.DETAILED,
                                          trigger=trigger)
    return apply_refresh(ctx, session, actor, plan, exchange)


def _inactive_outcome(link: Link) -> RefreshOutcome:
    return RefreshOutcome(link.customer_id, link.integration_id, link.integration.name,
                          link.external_customer_id, SKIPPED,
                          message=f"{link.integration.name} is inactive; no lookup was made")


def _run_plans(ctx: ServiceContext, actor: Actor, plans: Sequence[RefreshPlan],
               trigger: Trigger) -> list[RefreshOutcome]:
    """Look every plan up at once (no session open), then apply all answers in one session."""
    callable_plans = [p for p in plans if p.target is not None]
    exchanges = lookup_many_sync(
        ctx.client, [(p.target, p.request) for p in callable_plans if p.target is not None],
        trigger=trigger)
    by_plan = dict(zip((id(p) for p in callable_plans), exchanges, strict=True))
    with ctx.db.session() as session:
        return [apply_refresh(ctx, session, actor, p, by_plan.get(id(p))) for p in plans]


def refresh_pairs(ctx: ServiceContext, actor: Actor, pairs: Sequence[tuple[str, int]], *,
                  trigger: Trigger = Trigger.DETAILED) -> list[RefreshOutcome]:
    """Refresh the links of these (customer id, integration id) pairs, concurrently.

    Opens its own short sessions and holds none during the adaptor calls. Pairs without a link
    are ignored; links to inactive integrations come back ``skipped`` without a lookup.
    """
    plans: list[RefreshPlan] = []
    skipped: list[RefreshOutcome] = []
    with ctx.db.session(readonly=True) as session:
        for customer_id, integration_id in pairs:
            link = _find_link(session, customer_id, integration_id)
            if link is None:
                continue
            plan = plan_refresh(ctx, link)
            if plan is None:
                skipped.append(_inactive_outcome(link))
            else:
                plans.append(plan)
    return skipped + (_run_plans(ctx, actor, plans, trigger) if plans else [])


def _find_link(session: Session, customer_id: str, integration_id: int) -> Link | None:
    return session.scalar(select(Link).where(Link.customer_id == customer_id,
                                             Link.integration_id == integration_id))


def refresh_stale_links(ctx: ServiceContext, actor: Actor, customer_id: str
                        ) -> list[RefreshOutcome]:
    """Refresh the profile's links to active integrations whose data is missing or older than
    ``ctx.settings.detailed_ttl_s``. No permission check: callers decide who may trigger it."""
    now = ctx.now()
    ttl = ctx.settings.detailed_ttl_s
    with ctx.db.session(readonly=True) as session:
        rows = session.execute(
            select(Link, PulledData)
            .join(Integration, Integration.id == Link.integration_id)
            .outerjoin(PulledData, (PulledData.customer_id == Link.customer_id)
                       & (PulledData.integration_id == Link.integration_id))
            .where(Link.customer_id == customer_id, Integration.active.is_(True))
            .order_by(Integration.name)).all()
        pairs = [(link.customer_id, link.integration_id) for link, pulled in rows
                 if is_stale(pulled, now, ttl)]
    return refresh_pairs(ctx, actor, pairs) if pairs else []


# ------------------------------------------------------------------------------ many at once


@dataclass
class _Profile:
    """A profile's values while a batch of refreshes is applied (updated as they apply)."""

    name: str
    address: str
    emails: set[str]
    phones: list[ProfilePhone]
    next_email: int
    next_phone: int


_PULLED_COLUMNS = ("name", "address", "custom_attributes", "transactions", "dropped",
                   "fetched_at", "last_attempt_at", "last_error", "exchange_id")


class _Batch:
    """What ``apply_refreshes`` reads once for all its plans, and the writes it collects."""

    def __init__(self, session: Session, plans: Sequence[RefreshPlan]) -> None:
        self.session = session
        pairs = sorted({(p.customer_id, p.integration_id) for p in plans})
        # FOR UPDATE: refreshes of one pair (and an unlink) apply one after the other
        self.links = dict(((c, i), x) for c, i, x in session.connection().execute(
            select(Link.customer_id, Link.integration_id, Link.external_customer_id)
            .where(tuple_(Link.customer_id, Link.integration_id).in_(pairs))
            .order_by(Link.customer_id, Link.integration_id).with_for_update()))
        self.pulled: dict[tuple[str, int], dict[str, Any]] = {}
        self.new_pulled: set[tuple[str, int]] = set()
        self.changed_pulled: set[tuple[str, int]] = set()
        columns = [getattr(PulledData, c) for c in _PULLED_COLUMNS]
        query = (select(PulledData.customer_id, PulledData.integration_id, *columns)
                 .where(tuple_(PulledData.customer_id, PulledData.integration_id).in_(pairs)))
        for row in session.connection().execute(query):
            self.pulled[(row[0], row[1])] = dict(zip(_PULLED_COLUMNS, row[2:], strict=True))
        self.profiles: dict[str, _Profile] = {}
        self.integrations: dict[int, tuple[str, bool]] = {}
        self.holders: dict[str, str] = {}
        """Normalised email / MOBILE E.164 → the id of the profile holding it."""
        self.names: dict[str, str] = {}
        self.audits: list[dict[str, Any]] = []
        self.changed_profiles: set[str] = set()

    def read_profiles(self, plans: Sequence[RefreshPlan], results: Sequence[CustomerProfile]
                      ) -> None:
        """Read the profiles, integrations and holders of the contacts the results carry."""
        session = self.session
        ids = sorted({p.customer_id for p in plans})
        for cid, name, address in session.connection().execute(
                select(Customer.id, Customer.name, Customer.address)
                .where(Customer.id.in_(ids))):
            self.profiles[cid] = _Profile(name or "", address or "", set(), [], 0, 0)
            self.names[cid] = name or ""
        for cid, normalized, position in session.connection().execute(
                select(CustomerEmail.customer_id, CustomerEmail.normalized,
                       CustomerEmail.position).where(CustomerEmail.customer_id.in_(ids))):
            profile = self.profiles[cid]
            profile.emails.add(normalized)
            profile.next_email = max(profile.next_email, position + 1)
        for cid, e164, kind, position in session.connection().execute(
                select(CustomerPhone.customer_id, CustomerPhone.e164, CustomerPhone.type,
                       CustomerPhone.position).where(CustomerPhone.customer_id.in_(ids))
                .order_by(CustomerPhone.customer_id, CustomerPhone.position)):
            profile = self.profiles[cid]
            profile.phones.append(ProfilePhone(e164, _phone_type(kind)))
            profile.next_phone = max(profile.next_phone, position + 1)
        for iid, name, overwrite in session.connection().execute(
                select(Integration.id, Integration.name, Integration.overwrite_existing)
                .where(Integration.id.in_(sorted({p.integration_id for p in plans})))):
            self.integrations[iid] = (name, overwrite)
        emails: set[str] = set()
        mobiles: set[str] = set()
        for result in results:
            keys = contact_keys(result)
            emails |= keys.emails
            mobiles |= keys.mobiles
        if emails:
            for value, name, cid in session.connection().execute(
                    select(CustomerEmail.normalized, Customer.name, Customer.id)
                    .join(Customer, Customer.id == CustomerEmail.customer_id)
                    .where(CustomerEmail.normalized.in_(sorted(emails)))):
                self.holders[value] = cid
                self.names.setdefault(cid, name or "")
        if mobiles:
            for key, name, cid in session.connection().execute(
                    select(CustomerPhone.mobile_key, Customer.name, Customer.id)
                    .join(Customer, Customer.id == CustomerPhone.customer_id)
                    .where(CustomerPhone.mobile_key.in_(sorted(mobiles)))):
                if key is not None:
                    self.holders[key] = cid
                    self.names.setdefault(cid, name or "")

    def held_elsewhere(self, customer_id: str, values: frozenset[str]) -> dict[str, str]:
        """Which of ``values`` another profile holds, and a description of it."""
        return {v: describe_profile(self.names.get(self.holders[v], ""), self.holders[v])
                for v in values if v in self.holders and self.holders[v] != customer_id}

    def pulled_row(self, pair: tuple[str, int]) -> dict[str, Any]:
        """The pair's pulled data (a new, empty one when it has none), marked as changed."""
        row = self.pulled.get(pair)
        if row is None:
            row = dict(name=None, address=None, custom_attributes={}, transactions=[],
                       dropped=[], fetched_at=None, last_attempt_at=None, last_error="",
                       exchange_id=None)
            self.pulled[pair] = row
            self.new_pulled.add(pair)
        self.changed_pulled.add(pair)
        return row

    def write(self) -> None:
        """Insert and update everything collected, a few multi-row statements in all."""
        session = self.session
        if self.changed_profiles:  # bulk UPDATE by primary key (updated_at set by onupdate)
            customers = table_of(Customer)
            session.connection().execute(
                update(customers).where(customers.c.id == bindparam("b_id"))
                .values(name=bindparam("b_name"), address=bindparam("b_address")),
                [{"b_id": cid, "b_name": self.profiles[cid].name,
                  "b_address": self.profiles[cid].address}
                 for cid in sorted(self.changed_profiles)])
        new = [{"customer_id": c, "integration_id": i, **self.pulled[(c, i)]}
               for c, i in sorted(self.new_pulled)]
        if new:
            session.connection().execute(insert(table_of(PulledData)), new)
        changed = [{"b_customer_id": c, "b_integration_id": i,
                    **{f"b_{k}": v for k, v in self.pulled[(c, i)].items()}}
                   for c, i in sorted(self.changed_pulled - self.new_pulled)]
        if changed:
            pulled = table_of(PulledData)
            session.connection().execute(
                update(pulled).where(pulled.c.customer_id == bindparam("b_customer_id"),
                                     pulled.c.integration_id == bindparam("b_integration_id"))
                .values({c: bindparam(f"b_{c}") for c in _PULLED_COLUMNS}), changed)
        insert_audit_rows(session, self.audits)


def _insert_contacts(session: Session, table: type[CustomerEmail] | type[CustomerPhone],
                     rows: list[dict[str, Any]]) -> list[bool]:
    """Insert contact rows in one savepoint; if one collides (another profile took it since it
    was read), each again in its own. Whether each row was added."""
    if not rows:
        return []
    try:
        with session.begin_nested():
            session.connection().execute(insert(table_of(table)), rows)
        return [True] * len(rows)
    except IntegrityError:
        pass
    added = []
    lost: dict[str, int] = {}  # rows of a profile not added: later ones move up
    for row in rows:
        row = {**row, "position": row["position"] - lost.get(row["customer_id"], 0)}
        try:
            with session.begin_nested():
                session.connection().execute(insert(table_of(table)), [row])
            added.append(True)
        except IntegrityError:
            added.append(False)
            lost[row["customer_id"]] = lost.get(row["customer_id"], 0) + 1
    return added


def apply_refreshes(ctx: ServiceContext, session: Session, actor: Actor,
                    items: Sequence[tuple[RefreshPlan, Exchange | None]]
                    ) -> list[RefreshOutcome]:
    """``apply_refresh`` for many plans in ``session``: the same rows and outcomes as applying
    them one after the other, read with a few set-wise queries and written with multi-row
    statements (for hot paths: the backfill)."""
    rows = [exchange_row(x, integration_id=p.integration_id, customer_id=p.customer_id,
                         actor=actor.username) for p, x in items if x is not None]
    stored = iter(insert_exchanges(session, rows))
    exchange_ids = [next(stored) if x is not None else None for _, x in items]
    batch = _Batch(session, [p for p, _ in items])
    outcomes: list[RefreshOutcome | None] = [None] * len(items)
    good: list[int] = []
    for k, ((plan, exchange), exchange_id) in enumerate(zip(items, exchange_ids, strict=True)):
        pair = (plan.customer_id, plan.integration_id)
        if batch.links.get(pair) != plan.external_customer_id:
            outcomes[k] = _outcome(plan, SKIPPED, exchange_id=exchange_id, message=(
                "the link changed during the lookup; its answer was not applied"))
            continue
        kind, message = _failure(exchange, plan)
        if kind is None and exchange is not None and exchange_id is not None:
            good.append(k)
    batch.read_profiles([items[k][0] for k in good],
                        [x.results[0] for k in good if (x := items[k][1]) is not None])
    pending: list[tuple[int, _Applied]] = []
    for k, ((plan, exchange), exchange_id) in enumerate(zip(items, exchange_ids, strict=True)):
        if outcomes[k] is not None:
            continue
        pair = (plan.customer_id, plan.integration_id)
        if k in good and exchange is not None and exchange_id is not None:
            applied = _apply_one(ctx, batch, plan, exchange, exchange_id)
            if isinstance(applied, RefreshOutcome):
                outcomes[k] = applied
            else:
                pending.append((k, applied))
            continue
        kind, message = _failure(exchange, plan)
        pulled = batch.pulled_row(pair)
        pulled["last_error"] = message
        pulled["last_attempt_at"] = ctx.now()
        outcomes[k] = _outcome(plan, FAILED, message=message, error_kind=kind,
                               exchange_id=exchange_id, fetched_at=pulled["fetched_at"])
    _add_contacts(batch, actor, pending)
    for k, applied in pending:
        outcomes[k] = applied.outcome()
    batch.write()
    return [o for o in outcomes if o is not None]


@dataclass
class _Applied:
    """A successful refresh whose new contacts are still to be inserted."""

    plan: RefreshPlan
    exchange_id: int
    integration_name: str
    before: dict[str, object]
    after: dict[str, object]
    """The changed own fields' values after this refresh."""
    merge: MergeResult
    fetched_at: datetime
    emails: list[tuple[NewEmail, dict[str, Any]]] = field(default_factory=list)
    phones: list[tuple[NewPhone, dict[str, Any]]] = field(default_factory=list)
    emails_added: list[str] = field(default_factory=list)
    phones_added: list[str] = field(default_factory=list)
    dropped: list[DroppedContact] = field(default_factory=list)

    def outcome(self) -> RefreshOutcome:
        """The refresh's outcome once its contacts are inserted."""
        return _outcome(self.plan, REFRESHED, exchange_id=self.exchange_id,
                        fetched_at=self.fetched_at, changed=tuple(self.after),
                        emails_added=tuple(self.emails_added),
                        phones_added=tuple(self.phones_added), dropped=tuple(self.dropped),
                        custom_attribute_count=len(self.merge.custom_attributes),
                        transaction_count=len(self.merge.transactions))


def _apply_one(ctx: ServiceContext, batch: _Batch, plan: RefreshPlan, exchange: Exchange,
               exchange_id: int) -> RefreshOutcome | _Applied:
    """Merge one answer into the batch's state (the in-memory ``_apply_success``)."""
    profile = batch.profiles.get(plan.customer_id)
    integration = batch.integrations.get(plan.integration_id)
    if profile is None or integration is None:  # deleted during the lookup
        return _outcome(plan, SKIPPED, message="the profile or integration no longer exists",
                        exchange_id=exchange_id)
    integration_name, overwrite = integration
    result = exchange.results[0]
    pair = (plan.customer_id, plan.integration_id)
    pulled = batch.pulled_row(pair)
    keys = contact_keys(result)
    merge = merge_detailed(
        ProfileValues(profile.name, profile.address, frozenset(profile.emails),
                      tuple(profile.phones)),
        dict(pulled["custom_attributes"] or {}), result, overwrite_existing=overwrite,
        emails_held_elsewhere=batch.held_elsewhere(plan.customer_id, keys.emails),
        mobiles_held_elsewhere=batch.held_elsewhere(plan.customer_id, keys.mobiles))
    before: dict[str, object] = {}
    after: dict[str, object] = {}
    if merge.name is not None:
        before["name"], after["name"] = profile.name, merge.name
        profile.name = batch.names[plan.customer_id] = merge.name
    if merge.address is not None:
        before["address"], after["address"] = profile.address, merge.address
        profile.address = merge.address
    if after:
        batch.changed_profiles.add(plan.customer_id)
    applied = _Applied(plan, exchange_id, integration_name, before, after, merge, ctx.now(),
                       dropped=list(merge.dropped))
    for email in merge.add_emails:  # held by this profile from now on (later plans see it)
        profile.emails.add(email.normalized)
        batch.holders[email.normalized] = plan.customer_id
        applied.emails.append((email, dict(
            customer_id=plan.customer_id, original=email.original,
            normalized=email.normalized, source=integration_name)))
    for phone in merge.add_phones:
        profile.phones.append(ProfilePhone(phone.e164, phone.type))
        mobile_key = phone.e164 if phone.type is PhoneType.MOBILE else None
        if mobile_key is not None:
            batch.holders[mobile_key] = plan.customer_id
        applied.phones.append((phone, dict(
            customer_id=plan.customer_id, original=phone.original, e164=phone.e164,
            type=phone.type.value, mobile_key=mobile_key, source=integration_name)))
    pulled.update(name=merge.pulled_name, address=merge.pulled_address,
                  custom_attributes=merge.custom_attributes, transactions=merge.transactions,
                  fetched_at=applied.fetched_at, last_attempt_at=applied.fetched_at,
                  last_error="", exchange_id=exchange_id)
    return applied


def _add_contacts(batch: _Batch, actor: Actor, pending: Sequence[tuple[int, _Applied]]) -> None:
    """Insert the new emails and phones of the applied refreshes (positions after the profile's
    last, in order), record what was dropped, the pulled ``dropped`` list and the audit events."""
    taken = "another profile took this value at the same time; it was not added"
    email_rows = [row for _, a in pending for _, row in a.emails]
    phone_rows = [row for _, a in pending for _, row in a.phones]
    for row in email_rows:
        profile = batch.profiles[row["customer_id"]]
        row["position"] = profile.next_email
        profile.next_email += 1
    for row in phone_rows:
        profile = batch.profiles[row["customer_id"]]
        row["position"] = profile.next_phone
        profile.next_phone += 1
    emails_ok = iter(_insert_contacts(batch.session, CustomerEmail, email_rows))
    phones_ok = iter(_insert_contacts(batch.session, CustomerPhone, phone_rows))
    for _, applied in pending:
        for email, _row in applied.emails:
            if next(emails_ok):
                applied.emails_added.append(email.original)
            else:
                applied.dropped.append(DroppedContact(email.original, "email", taken))
        for phone, _row in applied.phones:
            if next(phones_ok):
                applied.phones_added.append(phone.e164)
            else:
                applied.dropped.append(DroppedContact(phone.original, "phone", taken))
        batch.pulled_row((applied.plan.customer_id, applied.plan.integration_id))[
            "dropped"] = [d.as_dict() for d in applied.dropped]
        if applied.after or applied.emails_added or applied.phones_added:
            after = dict(applied.after)
            after.update(integration=applied.integration_name,
                         emails_added=applied.emails_added, phones_added=applied.phones_added)
            batch.audits.append(audit_row(actor, "customer.refreshed", "customer",
                                          applied.plan.customer_id, dict(applied.before),
                                          after))


class RefreshService:
    """Detailed refresh on demand and of stale data."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def refresh(self, actor: Actor, customer_id: str, integration_id: int | None = None
                ) -> list[RefreshOutcome]:
        """Refresh one link now, or every link of the profile to an active integration."""
        actor.require(Permission.LINK, "refresh linked data")
        with self.ctx.db.session(readonly=True) as session:
            if session.get(Customer, customer_id) is None:
                raise NotFound(f"no customer profile with id {customer_id!r}")
            if integration_id is None:
                links = session.scalars(
                    select(Link).join(Integration, Integration.id == Link.integration_id)
                    .where(Link.customer_id == customer_id, Integration.active.is_(True))
                    .order_by(Integration.name)).all()
            else:
                link = _find_link(session, customer_id, integration_id)
                if link is None:
                    integration = session.get(Integration, integration_id)
                    name = integration.name if integration else f"integration {integration_id}"
                    raise NotFound(f"this profile is not linked to {name}; link it first")
                if not link.integration.active:
                    raise InvalidInput({"integration": f"{link.integration.name} is inactive; "
                                        "an admin must activate it before it can be refreshed"})
                links = [link]
            pairs = [(link.customer_id, link.integration_id) for link in links]
        return refresh_pairs(self.ctx, actor, pairs)

    def refresh_stale(self, actor: Actor, customer_id: str) -> list[RefreshOutcome]:
        """Refresh only the links whose data is missing or older than the TTL."""
        actor.require(Permission.LINK, "refresh linked data")
        with self.ctx.db.session(readonly=True) as session:
            if session.get(Customer, customer_id) is None:
                raise NotFound(f"no customer profile with id {customer_id!r}")
        return refresh_stale_links(self.ctx, actor, customer_id)
