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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.contract import LookupRequest, RequestKind, detailed_request
from linker.core.identity import PhoneType, parse_phone_type
from linker.core.merge import (
    DroppedContact,
    MergeResult,
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
from linker.services.audit import record_audit
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, NotFound
from linker.services.targets import target_for
from linker.store.exchanges import record_exchange
from linker.store.models import (
    Customer,
    CustomerEmail,
    CustomerPhone,
    Integration,
    Link,
    PulledData,
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
