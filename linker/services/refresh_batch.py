"""Detailed refreshes applied many at once (for hot paths: the backfill).

``apply_refreshes`` stores the same rows and returns the same outcomes as ``apply_refresh``
called for each plan in turn, but reads with a few set-wise queries and writes with multi-row
statements (``linker.store.refresh_writes``): the profiles' values live in memory meanwhile, so
a later plan sees what an earlier one added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from linker.contract import CustomerProfile
from linker.core.identity import PhoneType
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
from linker.core.permissions import Actor
from linker.lookup.exchange import Exchange
from linker.services.audit import audit_row, insert_audit_rows
from linker.services.context import ServiceContext
from linker.services.refresh_outcome import (
    FAILED,
    REFRESHED,
    TAKEN,
    RefreshOutcome,
    RefreshPlan,
    failure_of,
    gone,
    link_changed,
    outcome_of,
    phone_type,
)
from linker.store import customers as customers_store
from linker.store import refresh_writes
from linker.store.exchanges import exchange_row, insert_exchanges
from linker.store.models import CustomerEmail, CustomerPhone


@dataclass
class _Profile:
    """A profile's values while a batch of refreshes is applied (updated as they apply)."""

    name: str
    address: str
    emails: set[str]
    phones: list[ProfilePhone]
    next_email: int
    next_phone: int


class _Batch:
    """What ``apply_refreshes`` reads once for all its plans, and the writes it collects."""

    def __init__(self, session: Session, plans: Sequence[RefreshPlan]) -> None:
        self.session = session
        pairs = sorted({(p.customer_id, p.integration_id) for p in plans})
        refresh_writes.lock_profiles(session, [c for c, _ in pairs])
        self.links = refresh_writes.lock_links(session, pairs)
        self.pulled = refresh_writes.pulled_values(session, pairs)
        self.new_pulled: set[tuple[str, int]] = set()
        self.changed_pulled: set[tuple[str, int]] = set()
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
        for cid, name, address in refresh_writes.profile_values(session, ids):
            self.profiles[cid] = _Profile(name or "", address or "", set(), [], 0, 0)
            self.names[cid] = name or ""
        for cid, normalized, position in refresh_writes.email_values(session, ids):
            profile = self.profiles[cid]
            profile.emails.add(normalized)
            profile.next_email = max(profile.next_email, position + 1)
        for cid, e164, kind, position in refresh_writes.phone_values(session, ids):
            profile = self.profiles[cid]
            profile.phones.append(ProfilePhone(e164, phone_type(kind)))
            profile.next_phone = max(profile.next_phone, position + 1)
        self.integrations = refresh_writes.merge_settings(
            session, sorted({p.integration_id for p in plans}))
        values: set[str] = set()
        for result in results:
            keys = contact_keys(result)
            values |= keys.emails | keys.mobiles
        for value, cid, name in customers_store.holders(session, sorted(values)):
            self.holders[value] = cid
            self.names.setdefault(cid, name or "")

    def held_elsewhere(self, customer_id: str, values: frozenset[str]) -> dict[str, str]:
        """Which of ``values`` another profile holds, and a description of it."""
        return {v: describe_profile(self.names.get(self.holders[v], ""), self.holders[v])
                for v in values if v in self.holders and self.holders[v] != customer_id}

    def pulled_row(self, pair: tuple[str, int]) -> dict[str, Any]:
        """The pair's pulled data (a new, empty one when it has none), marked as changed."""
        row = self.pulled.get(pair)
        if row is None:
            row = self.pulled[pair] = refresh_writes.empty_pulled()
            self.new_pulled.add(pair)
        self.changed_pulled.add(pair)
        return row

    def write(self) -> None:
        """Insert and update everything collected, a few multi-row statements in all."""
        session = self.session
        refresh_writes.update_profiles(session, [
            (cid, self.profiles[cid].name, self.profiles[cid].address)
            for cid in sorted(self.changed_profiles)])
        refresh_writes.insert_pulled(session, [
            {"customer_id": c, "integration_id": i, **self.pulled[(c, i)]}
            for c, i in sorted(self.new_pulled)])
        refresh_writes.update_pulled(session, [
            {"customer_id": c, "integration_id": i, **self.pulled[(c, i)]}
            for c, i in sorted(self.changed_pulled - self.new_pulled)])
        insert_audit_rows(session, self.audits)


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
            outcomes[k] = link_changed(plan, exchange_id)
            continue
        kind, message = failure_of(exchange, plan)
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
        kind, message = failure_of(exchange, plan)
        pulled = batch.pulled_row(pair)
        pulled["last_error"] = message
        pulled["last_attempt_at"] = ctx.now()
        outcomes[k] = outcome_of(plan, FAILED, message=message, error_kind=kind,
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
        return outcome_of(self.plan, REFRESHED, exchange_id=self.exchange_id,
                          fetched_at=self.fetched_at, changed=tuple(self.after),
                          emails_added=tuple(self.emails_added),
                          phones_added=tuple(self.phones_added), dropped=tuple(self.dropped),
                          custom_attribute_count=len(self.merge.custom_attributes),
                          transaction_count=len(self.merge.transactions))


def _apply_one(ctx: ServiceContext, batch: _Batch, plan: RefreshPlan, exchange: Exchange,
               exchange_id: int) -> RefreshOutcome | _Applied:
    """Merge one answer into the batch's state (the in-memory ``apply_refresh`` success)."""
    profile = batch.profiles.get(plan.customer_id)
    integration = batch.integrations.get(plan.integration_id)
    if profile is None or integration is None:  # deleted during the lookup
        return gone(plan, exchange_id)
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
    emails_ok = iter(refresh_writes.insert_contacts(batch.session, CustomerEmail, email_rows))
    phones_ok = iter(refresh_writes.insert_contacts(batch.session, CustomerPhone, phone_rows))
    for _, applied in pending:
        for email, _row in applied.emails:
            if next(emails_ok):
                applied.emails_added.append(email.original)
            else:
                applied.dropped.append(DroppedContact(email.original, "email", TAKEN))
        for phone, _row in applied.phones:
            if next(phones_ok):
                applied.phones_added.append(phone.e164)
            else:
                applied.dropped.append(DroppedContact(phone.original, "phone", TAKEN))
        batch.pulled_row((applied.plan.customer_id, applied.plan.integration_id))[
            "dropped"] = [d.as_dict() for d in applied.dropped]
        if applied.after or applied.emails_added or applied.phones_added:
            after = dict(applied.after)
            after.update(integration=applied.integration_name,
                         emails_added=applied.emails_added, phones_added=applied.phones_added)
            batch.audits.append(audit_row(actor, "customer.refreshed", "customer",
                                          applied.plan.customer_id, dict(applied.before),
                                          after))
