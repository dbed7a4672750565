""""Why (not) linked?": the state of a (customer, integration), the trail behind it, the fix.

The state is read from what is true now (link, suppression, integration settings); the trail is
the recorded auto-link outcomes and the exchanges with that integration for that customer,
newest first; the fix is derived from the state and, when nothing else blocks, from the latest
auto-link outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from linker import safejson
from linker.contract import RequestKind, validate_response
from linker.core.autolink import AutolinkField, Outcome, describe_ambiguity
from linker.core.identity import PhoneType
from linker.core.permissions import Actor, Permission
from linker.services.context import ServiceContext
from linker.services.errors import NotFound
from linker.store import customers as customers_store
from linker.store import exchanges as exchanges_store
from linker.store import integrations as integrations_store
from linker.store import links as links_store
from linker.store import outcomes as outcomes_store
from linker.store.models import (
    AutolinkOutcome,
    Customer,
    ExchangeRecord,
    Integration,
    Link,
    Suppression,
)

TRAIL_LIMIT = 50


class LinkState(StrEnum):
    """Where a (customer, integration) stands, most decisive first."""

    LINKED_AUTO = "linked_auto"
    LINKED_MANUAL = "linked_manual"
    INTEGRATION_INACTIVE = "integration_inactive"
    SUPPRESSED = "suppressed"
    AUTOLINK_OFF = "autolink_off"
    NO_FIELDS = "no_fields"
    NOT_LINKED = "not_linked"


@dataclass(frozen=True)
class TrailEntry:
    """One step of the trail: an auto-link outcome (with its exchange) or another exchange."""

    at: datetime
    entry: str
    """``outcome`` or ``exchange``."""
    outcome: str | None
    reason: str
    trigger: str
    actor: str
    exchange_id: int | None
    exchange_kind: str | None
    status: int | None
    error_kind: str | None
    external_customer_id: str | None = None
    candidates: int | None = None


@dataclass(frozen=True)
class Explanation:
    """Why a profile is or is not linked to an integration, and what to do about it."""

    customer_id: str
    customer_name: str
    integration_id: int
    integration_name: str
    state: LinkState
    blockers: tuple[LinkState, ...]
    """Every state that applies (the first is ``state``), e.g. suppressed and auto-link off."""
    summary: str
    fix: str
    """What to do, in plain words; empty when nothing needs fixing."""
    external_customer_id: str | None
    linked_at: datetime | None
    linked_by: str | None
    suppressed_at: datetime | None
    suppressed_by: str | None
    trail: tuple[TrailEntry, ...]

    @property
    def latest_outcome(self) -> TrailEntry | None:
        """The newest recorded auto-link outcome, if any."""
        return next((t for t in self.trail if t.entry == "outcome"), None)


@dataclass(frozen=True)
class _Facts:
    customer: Customer
    integration: Integration
    link: Link | None
    suppression: Suppression | None
    outcomes: list[AutolinkOutcome]
    exchanges: dict[int, ExchangeRecord]
    others: list[ExchangeRecord]


def _facts(session: Session, customer_id: str, integration_id: int) -> _Facts:
    customer = customers_store.with_contacts(session, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id!r} does not exist; check the id or search by "
                       "email, phone or name")
    integration = integrations_store.find(session, integration_id)
    if integration is None:
        raise NotFound(f"integration {integration_id} does not exist; pick one from the "
                       "integrations list")
    link = links_store.link_of(session, customer_id, integration_id)
    suppression = links_store.suppression_of(session, customer_id, integration_id)
    outcomes = outcomes_store.pair_outcomes(session, customer_id, integration_id, TRAIL_LIMIT)
    exchange_rows = exchanges_store.pair_exchanges(session, customer_id, integration_id,
                                                   TRAIL_LIMIT)
    referenced = {o.exchange_id for o in outcomes if o.exchange_id is not None}
    exchanges = {e.id: e for e in exchange_rows}
    missing = referenced - exchanges.keys()
    exchanges.update(exchanges_store.records_by_id(session, missing))
    others = [e for e in exchange_rows if e.id not in referenced]
    return _Facts(customer, integration, link, suppression, outcomes, exchanges, others)


def _trail(facts: _Facts) -> tuple[TrailEntry, ...]:
    entries = []
    for o in facts.outcomes:
        ex = facts.exchanges.get(o.exchange_id) if o.exchange_id is not None else None
        entries.append(TrailEntry(
            at=o.created_at, entry="outcome", outcome=o.outcome, reason=o.reason,
            trigger=o.trigger, actor=o.actor, exchange_id=o.exchange_id,
            exchange_kind=ex.kind if ex else None, status=ex.response_status if ex else None,
            error_kind=ex.error_kind if ex else None,
            external_customer_id=o.external_customer_id, candidates=o.candidates))
    for ex in facts.others:
        what = f"{ex.kind} lookup ({ex.trigger})"
        reason = (f"{what} failed: {ex.error_message or ex.error_kind}" if ex.error_kind
                  else f"{what} answered HTTP {ex.response_status} with {ex.result_count} "
                  f"result(s)")
        entries.append(TrailEntry(
            at=ex.started_at, entry="exchange", outcome=None, reason=reason, trigger=ex.trigger,
            actor=ex.actor, exchange_id=ex.id, exchange_kind=ex.kind,
            status=ex.response_status, error_kind=ex.error_kind))
    entries.sort(key=lambda t: (t.at, t.exchange_id or 0), reverse=True)
    return tuple(entries[:TRAIL_LIMIT])


def _blockers(facts: _Facts) -> list[LinkState]:
    integration = facts.integration
    found = []
    if not integration.active:
        found.append(LinkState.INTEGRATION_INACTIVE)
    if facts.suppression is not None:
        found.append(LinkState.SUPPRESSED)
    if not integration.autolink_enabled:
        found.append(LinkState.AUTOLINK_OFF)
    elif not integration.autolink_fields:
        found.append(LinkState.NO_FIELDS)
    return found


def _profile_values(customer: Customer) -> tuple[list[str], list[str]]:
    emails = [e.original for e in customer.emails]
    mobiles = [p.e164 for p in customer.phones if p.type == PhoneType.MOBILE.value]
    return emails, mobiles


def _ambiguity(facts: _Facts, outcome: AutolinkOutcome) -> str | None:
    """``results X and Y share the email Z``, re-read from the stored exchange, if possible."""
    ex = facts.exchanges.get(outcome.exchange_id) if outcome.exchange_id is not None else None
    if ex is None or not ex.response_body or ex.body_truncated:
        return None
    try:
        payload = safejson.loads(ex.response_body)
    except ValueError:
        return None
    results = validate_response(payload, RequestKind.AUTOLINK).results
    if len(results) < 2:
        return None
    emails, mobiles = _profile_values(facts.customer)
    fields = [f for f in facts.integration.autolink_fields
              if f in {a.value for a in AutolinkField}] or [a.value for a in AutolinkField]
    return describe_ambiguity(emails, mobiles, fields, results)


def _needs(integration: Integration) -> str:
    return AutolinkField.needed_values(integration.autolink_fields)


def _outcome_fix(facts: _Facts, latest: AutolinkOutcome | None) -> tuple[str, str]:
    """Summary and fix for an unlinked pair that nothing blocks, from the latest outcome."""
    name = facts.integration.name
    if latest is None:
        return (f"Not linked to {name}; no auto-link attempt has been recorded yet.",
                "Open the profile (it auto-links when opened) or run a backfill "
                "(linker autolink backfill); or link manually.")
    outcome = Outcome(latest.outcome)
    when = f"The last auto-link attempt ({latest.trigger})"
    ext = latest.external_customer_id
    fixes: dict[Outcome, str] = {
        Outcome.NO_MATCH: f"Nothing in {name} matches this profile's email or mobile phone: "
        f"link manually (search by name or order number), or add to the profile the email or "
        f"mobile phone {name} knows.",
        Outcome.NO_FIELD_MATCH: f"The one record {name} returned shares no email or MOBILE "
        "phone with the profile: if it is the same person, link manually or add the matching "
        "email or mobile phone to the profile.",
        Outcome.CONFLICT: f"Record {ext} is already linked to another profile: if that link is "
        "wrong, unlink it there, then link this profile manually (or merge the two profiles).",
        Outcome.ERROR: f"Fix the adaptor: see exchange {latest.exchange_id} in the exchange "
        "log; auto-linking tries again when the profile is next opened, or link manually.",
        Outcome.SKIPPED: f"Add {_needs(facts.integration)} to the profile, then open it again; "
        "or link manually.",
        Outcome.SUPPRESSED: "The suppression has been cleared since; the next auto-link attempt "
        "(open the profile) will try again, or link manually.",
        Outcome.LINKED: f"It was auto-linked to record {ext} before but the link is gone; open "
        "the profile to auto-link again, or link manually.",
    }
    if outcome is Outcome.AMBIGUOUS:
        detail = _ambiguity(facts, latest) or f"{latest.candidates} records matched"
        fix = (f"Resolve the ambiguity: {detail}; merge or remove the duplicate records in "
               f"{name}, or link the right one manually.")
    else:
        fix = fixes[outcome]
    return f"Not linked to {name}. {when} ended {outcome.value}: {latest.reason}", fix


def _explain(facts: _Facts) -> tuple[LinkState, list[LinkState], str, str]:
    name = facts.integration.name
    blockers = _blockers(facts)
    if facts.link is not None:
        link = facts.link
        state = LinkState.LINKED_AUTO if link.method == "auto" else LinkState.LINKED_MANUAL
        how = "automatically" if link.method == "auto" else f"manually by {link.created_by}"
        summary = (f"Linked to {name} record {link.external_customer_id} ({how}, "
                   f"{link.created_at:%Y-%m-%d %H:%M} UTC).")
        if LinkState.INTEGRATION_INACTIVE in blockers:
            return (state, [state], summary + f" {name} is inactive, so the link is dormant "
                    "and its data hidden.", f"Activate {name} to see its data again.")
        return state, [state], summary, ""
    latest = facts.outcomes[0] if facts.outcomes else None
    if not blockers:
        summary, fix = _outcome_fix(facts, latest)
        return LinkState.NOT_LINKED, [LinkState.NOT_LINKED], summary, fix
    state = blockers[0]
    sup = facts.suppression
    texts: dict[LinkState, tuple[str, str]] = {
        LinkState.INTEGRATION_INACTIVE: (
            f"{name} is inactive: no lookup is sent to it.",
            f"Activate {name} (admin), or link to another system."),
        LinkState.SUPPRESSED: (
            f"Auto-linking to {name} is suppressed for this profile since "
            f"{sup.created_at:%Y-%m-%d %H:%M} UTC ({sup.created_by or 'unknown'} unlinked it)."
            if sup else "",
            "Clear the suppression if the profile should auto-link again, or link manually."),
        LinkState.AUTOLINK_OFF: (
            f"Auto-linking is off for {name}.",
            f"Turn on auto-linking for {name} (admin), or link manually."),
        LinkState.NO_FIELDS: (
            f"{name} has auto-linking on but no auto-linking field, so no request is sent.",
            f"Add an auto-linking field (email or mobile phone) to {name} (admin), or link "
            "manually."),
    }
    summary = " ".join(texts[b][0] for b in blockers)
    fix = " Also: ".join(texts[b][1] for b in blockers)
    return state, blockers, summary, fix


class WhyService:
    """Explains why a profile is or is not linked to an integration."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def explain(self, actor: Actor, customer_id: str, integration_id: int) -> Explanation:
        """The current state, the outcomes and exchanges behind it (newest first) and the fix.

        Raises NotFound for an unknown customer or integration.
        """
        actor.require(Permission.VIEW_CUSTOMERS, "see why a profile is (not) linked")
        with self.ctx.db.session(readonly=True) as session:
            facts = _facts(session, customer_id, integration_id)
            state, blockers, summary, fix = _explain(facts)
            link, sup = facts.link, facts.suppression
            return Explanation(
                customer_id=facts.customer.id, customer_name=facts.customer.name,
                integration_id=facts.integration.id, integration_name=facts.integration.name,
                state=state, blockers=tuple(blockers), summary=summary, fix=fix,
                external_customer_id=link.external_customer_id if link else None,
                linked_at=link.created_at if link else None,
                linked_by=link.created_by if link else None,
                suppressed_at=sup.created_at if sup else None,
                suppressed_by=sup.created_by if sup else None,
                trail=_trail(facts))
