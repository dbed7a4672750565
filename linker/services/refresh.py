"""Detailed refresh: fetch a linked record with a DETAILED lookup and apply it to the profile.

A refresh runs in three steps so that no database session is held open across an adaptor call:

1. ``plan_refresh`` reads the link, the profile and the integration and builds the request;
2. the lookup runs (several at once through the fan-out when a profile has several links);
3. ``apply_refresh`` stores the exchange and applies the answer with the rules of
   ``linker.core.merge`` (contract section 4). On failure the old pulled data is kept and
   the error is stored on it (``last_error``, ``last_attempt_at``).

``refresh_pairs`` runs the three steps with short sessions of its own; ``refresh_link`` runs
them inside a session the caller already holds (simpler, but that session stays open during
the adaptor call). Inactive integrations never get a lookup. The set-wise ``apply_refreshes``
(for the backfill) is in ``services.refresh_batch``; the plan and outcome types in
``services.refresh_outcome``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from linker.contract import RequestKind, detailed_request
from linker.core.identity import PhoneType
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
from linker.services.refresh_outcome import (
    FAILED,
    REFRESHED,
    SKIPPED,
    TAKEN,
    RefreshOutcome,
    RefreshPlan,
    failure_of,
    gone,
    link_changed,
    outcome_of,
    phone_type,
)
from linker.services.targets import target_for
from linker.store import customers as customers_store
from linker.store import integrations as integrations_store
from linker.store import links as links_store
from linker.store import refresh_writes
from linker.store.exchanges import record_exchange
from linker.store.models import Customer, CustomerEmail, CustomerPhone, Link, PulledData


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


def _held_elsewhere(session: Session, customer_id: str, emails: frozenset[str],
                    mobiles: frozenset[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Which of these emails / MOBILE numbers other profiles hold, and a description of them."""
    held_emails: dict[str, str] = {}
    held_mobiles: dict[str, str] = {}
    for value, cid, name in customers_store.holders(session, sorted(emails | mobiles)):
        if cid != customer_id:
            held = held_emails if value in emails else held_mobiles
            held[value] = describe_profile(name, cid)
    return held_emails, held_mobiles


def _apply_contacts(session: Session, customer: Customer, merge: MergeResult, source: str
                    ) -> tuple[list[str], list[str], list[DroppedContact]]:
    emails_added: list[str] = []
    phones_added: list[str] = []
    dropped = list(merge.dropped)
    position = max((e.position for e in customer.emails), default=-1) + 1
    for email in merge.add_emails:
        email_row = CustomerEmail(customer_id=customer.id, original=email.original,
                                  normalized=email.normalized, position=position, source=source)
        if customers_store.add_contact(session, email_row):
            emails_added.append(email.original)
            position += 1
        else:
            dropped.append(DroppedContact(email.original, "email", TAKEN))
    position = max((p.position for p in customer.phones), default=-1) + 1
    for phone in merge.add_phones:
        mobile_key = phone.e164 if phone.type is PhoneType.MOBILE else None
        phone_row = CustomerPhone(customer_id=customer.id, original=phone.original,
                                  e164=phone.e164, type=phone.type.value, mobile_key=mobile_key,
                                  position=position, source=source)
        if customers_store.add_contact(session, phone_row):
            phones_added.append(phone.e164)
            position += 1
        else:
            dropped.append(DroppedContact(phone.original, "phone", TAKEN))
    session.expire(customer, ["emails", "phones"])
    return emails_added, phones_added, dropped



def _profile_values(customer: Customer) -> ProfileValues:
    return ProfileValues(
        name=customer.name or "",
        address=customer.address or "",
        emails=frozenset(e.normalized for e in customer.emails),
        phones=tuple(ProfilePhone(p.e164, phone_type(p.type)) for p in customer.phones),
    )



def _apply_success(ctx: ServiceContext, session: Session, actor: Actor, plan: RefreshPlan,
                   exchange: Exchange, exchange_id: int) -> RefreshOutcome:
    customer = customers_store.get(session, plan.customer_id)
    integration = integrations_store.find(session, plan.integration_id)
    if customer is None or integration is None:  # deleted during the lookup
        return gone(plan, exchange_id)
    result = exchange.results[0]
    pulled = links_store.pulled_row(session, customer.id, integration.id)
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
    return outcome_of(plan, REFRESHED, exchange_id=exchange_id, fetched_at=now,
                      changed=tuple(changed), emails_added=tuple(emails_added),
                      phones_added=tuple(phones_added), dropped=tuple(dropped),
                      custom_attribute_count=len(merge.custom_attributes),
                      transaction_count=len(merge.transactions))



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
    # the profile first, then the link (FOR UPDATE: refreshes of one pair and an unlink apply
    # one after the other); the lock order of every refresh, see ``lock_profiles``
    refresh_writes.lock_profiles(session, [plan.customer_id])
    link = links_store.link_of(session, plan.customer_id, plan.integration_id, for_update=True)
    if link is None or link.external_customer_id != plan.external_customer_id:
        return link_changed(plan, exchange_id)
    kind, message = failure_of(exchange, plan)
    if kind is None and exchange is not None and exchange_id is not None:
        return _apply_success(ctx, session, actor, plan, exchange, exchange_id)
    pulled = links_store.pulled_row(session, plan.customer_id, plan.integration_id)
    pulled.last_error = message
    pulled.last_attempt_at = ctx.now()
    return outcome_of(plan, FAILED, message=message, error_kind=kind, exchange_id=exchange_id,
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
        refresh_writes.lock_profiles(session, [p.customer_id for p in plans])
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
            link = links_store.link_of(session, customer_id, integration_id)
            if link is None:
                continue
            plan = plan_refresh(ctx, link)
            if plan is None:
                skipped.append(_inactive_outcome(link))
            else:
                plans.append(plan)
    return skipped + (_run_plans(ctx, actor, plans, trigger) if plans else [])


def refresh_stale_links(ctx: ServiceContext, actor: Actor, customer_id: str
                        ) -> list[RefreshOutcome]:
    """Refresh the profile's links to active integrations whose data is missing or older than
    ``ctx.settings.detailed_ttl_s``. No permission check: callers decide who may trigger it."""
    now = ctx.now()
    ttl = ctx.settings.detailed_ttl_s
    with ctx.db.session(readonly=True) as session:
        pairs = [(link.customer_id, link.integration_id)
                 for link, pulled in links_store.active_links_of(session, customer_id)
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
            if customers_store.get(session, customer_id) is None:
                raise NotFound(f"no customer profile with id {customer_id!r}")
            if integration_id is None:
                links = [link for link, _ in links_store.active_links_of(session, customer_id)]
            else:
                link = links_store.link_of(session, customer_id, integration_id)
                if link is None:
                    integration = integrations_store.find(session, integration_id)
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
            if customers_store.get(session, customer_id) is None:
                raise NotFound(f"no customer profile with id {customer_id!r}")
        return refresh_stale_links(self.ctx, actor, customer_id)
