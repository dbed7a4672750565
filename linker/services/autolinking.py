"""Auto-linking: the rule of contract section 2.2 run against every eligible integration.

Flow of one attempt (one profile × one integration), also used by the backfill:

1. *plan* (read): skip without a request when the integration has no auto-linking field, the
   pair is suppressed (the profile was unlinked before), or the profile has nothing to send for
   the enabled fields; otherwise build one BASIC auto-link request;
2. *send*: the requests of a profile go out concurrently, no database session held open;
3. *record* (one write transaction per attempt): store the exchange, apply ``decide``, create
   the link inside a savepoint (a unique violation becomes a ``conflict`` outcome, never a crash
   or a duplicate), and record an ``AutolinkOutcome`` row for every attempt;
4. *refresh*: a new link is followed by a DETAILED lookup (its own transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from linker.contract import LookupRequest, autolink_request
from linker.core.autolink import AutolinkDecision, AutolinkField, Outcome, decide
from linker.core.identity import PhoneType
from linker.core.permissions import Actor, Permission
from linker.lookup import Exchange, Trigger, lookup_many_sync
from linker.lookup.target import AdaptorTarget, InvalidTarget
from linker.services.audit import audit_row, insert_audit_rows
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput, NotFound
from linker.services.linking import LinkRecordView, create_link
from linker.services.refresh import refresh_pairs
from linker.services.targets import target_for
from linker.store import customers as customers_store
from linker.store import integrations as integrations_store
from linker.store import links as links_store
from linker.store import outcomes as outcomes_store
from linker.store.customers import ProfileContacts
from linker.store.exchanges import exchange_row, insert_exchanges, record_exchange
from linker.store.models import AutolinkOutcome, Customer, Integration, utcnow


class AutolinkTrigger(StrEnum):
    """What started an auto-link attempt (stored on its outcome)."""

    CUSTOMER_CREATED = "customer_created"
    PROFILE_OPENED = "profile_opened"
    BACKFILL = "backfill"
    DEBUGGER = "debugger"


def check_trigger(actor: Actor, trigger: str) -> AutolinkTrigger:
    """The trigger as an enum, after checking the actor may start auto-linking that way.

    Automatic runs (customer created, profile opened) need VIEW_CUSTOMERS, a backfill needs
    RUN_BACKFILL, and linking from the debugger needs TEST_INTEGRATIONS and LINK.
    """
    try:
        kind = AutolinkTrigger(trigger)
    except ValueError:
        allowed = ", ".join(t.value for t in AutolinkTrigger)
        raise InvalidInput({"trigger": f"unknown trigger {trigger!r}; use one of {allowed}"}
                           ) from None
    if kind is AutolinkTrigger.BACKFILL:
        actor.require(Permission.RUN_BACKFILL, "run an auto-link backfill")
    elif kind is AutolinkTrigger.DEBUGGER:
        actor.require(Permission.TEST_INTEGRATIONS, "auto-link from the debugger")
        actor.require(Permission.LINK, "auto-link from the debugger")
    else:
        actor.require(Permission.VIEW_CUSTOMERS, "auto-link a customer")
    return kind


@dataclass(frozen=True)
class AutolinkResult:
    """The outcome of one auto-link attempt for a (customer, integration).

    ``outcome_id`` is the recorded ``AutolinkOutcome`` row (None in a dry run); ``link_id`` is
    set when the attempt created a link; ``refresh_error`` says why the DETAILED lookup after
    the link failed, if it did (the link stays).
    """

    customer_id: str
    integration_id: int
    integration_name: str
    outcome: Outcome
    reason: str
    external_customer_id: str | None = None
    candidates: int = 0
    exchange_id: int | None = None
    error_kind: str | None = None
    outcome_id: int | None = None
    link_id: int | None = None
    refresh_error: str | None = None


@dataclass(frozen=True)
class ProfileSnapshot:
    """What an auto-link attempt needs of a profile, read once."""

    customer_id: str
    name: str
    emails: tuple[str, ...]
    """Email addresses as entered, main first."""
    phones: tuple[str, ...]
    """E.164 of every phone (all are sent; only MOBILE ones can match)."""
    mobiles: tuple[str, ...]
    """E.164 of the MOBILE phones."""
    normalized_emails: tuple[str, ...] = ()
    """Normalised emails, main first (what a DETAILED request carries)."""
    all_phones: tuple[str, ...] = ()
    """E.164 of every phone in position order, repeats kept (what a DETAILED request carries)."""
    custom_attributes: tuple[tuple[str, str], ...] = ()
    """The profile's own custom attributes as text (what a DETAILED request carries)."""

    @classmethod
    def of(cls, customer: Customer) -> ProfileSnapshot:
        """Snapshot of a loaded customer (emails and phones in position order)."""
        emails = sorted(customer.emails, key=lambda e: e.position)
        phones = sorted(customer.phones, key=lambda p: p.position)
        return cls.of_contacts(customer.id, ProfileContacts(
            customer.name or "", dict(customer.custom_attributes or {}),
            [(e.original, e.normalized) for e in emails], [(p.e164, p.type) for p in phones]))

    @classmethod
    def of_contacts(cls, customer_id: str, profile: ProfileContacts) -> ProfileSnapshot:
        """Snapshot of a profile read with its contacts (in position order)."""
        phones = profile.phones
        return cls(customer_id, profile.name, tuple(o.strip() for o, _ in profile.emails),
                   tuple(dict.fromkeys(e164 for e164, _ in phones)),
                   tuple(e164 for e164, kind in phones if kind == PhoneType.MOBILE.value),
                   normalized_emails=tuple(n for _, n in profile.emails),
                   all_phones=tuple(e164 for e164, _ in phones),
                   custom_attributes=tuple((str(k), str(v)) for k, v in
                                           profile.custom_attributes.items()))


@dataclass(frozen=True)
class IntegrationSnapshot:
    """What an auto-link attempt needs of an integration (secrets only inside ``target``)."""

    id: int
    name: str
    fields: frozenset[str]
    target: AdaptorTarget | None
    problem: str = ""
    """Why the adaptor cannot be called (an unusable setting); empty when it can."""


@dataclass(frozen=True)
class Attempt:
    """One planned attempt: a request to send, or an outcome known without sending one."""

    profile: ProfileSnapshot
    integration: IntegrationSnapshot
    request: LookupRequest | None = None
    preset: AutolinkDecision | None = None


# ------------------------------------------------------------------------------------ planning


def autolink_field_set(integration: Integration) -> frozenset[str]:
    """The integration's auto-linking fields Linker knows (email, mobile)."""
    return frozenset(str(f) for f in integration.autolink_fields
                     if str(f) in {f.value for f in AutolinkField})


def has_autolink_field(integration: Integration) -> bool:
    """True when auto-linking has something to compare: at least one known field."""
    return bool(autolink_field_set(integration))


def snapshot_integration(ctx: ServiceContext, integration: Integration) -> IntegrationSnapshot:
    """The integration's auto-link settings and its adaptor target."""
    fields = autolink_field_set(integration)
    try:
        return IntegrationSnapshot(integration.id, integration.name, fields,
                                   target_for(integration, ctx.secrets))
    except InvalidTarget as exc:
        return IntegrationSnapshot(integration.id, integration.name, fields, None,
                                   f"{integration.name} cannot be called: {exc}")


def plan_attempt(profile: ProfileSnapshot, integration: IntegrationSnapshot, *,
                 suppressed: bool) -> Attempt:
    """The attempt for one pair: a preset outcome when no request may or need be sent."""
    def preset(outcome: Outcome, reason: str) -> Attempt:
        return Attempt(profile, integration, preset=AutolinkDecision(outcome, reason, None, 0))

    if not integration.fields:
        return preset(Outcome.SKIPPED, f"{integration.name} has auto-linking on but no "
                      "auto-linking field (email or mobile phone), so no request was sent.")
    if suppressed:
        return preset(Outcome.SUPPRESSED, f"This profile was unlinked from {integration.name} "
                      "before, so it is never auto-linked to it again unless someone clears "
                      "the suppression; no request was sent.")
    has_email = AutolinkField.EMAIL in integration.fields and bool(profile.normalized_emails)
    has_mobile = AutolinkField.MOBILE in integration.fields and bool(profile.mobiles)
    if not (has_email or has_mobile):
        wanted = AutolinkField.needed_values(integration.fields)
        return preset(Outcome.SKIPPED, f"The profile has no value for {integration.name}'s "
                      f"auto-linking fields (it needs {wanted}), so no request was sent.")
    if integration.target is None:
        return preset(Outcome.ERROR, f"{integration.problem}; fix the integration's settings. "
                      "No request was sent.")
    request = autolink_request(profile.customer_id, profile.name, profile.normalized_emails,
                               profile.phones)
    return Attempt(profile, integration, request=request)


def load_profiles(session: Session, customer_ids: Sequence[str]) -> dict[str, ProfileSnapshot]:
    """Snapshots of the given customers (missing ids are left out)."""
    return {cid: ProfileSnapshot.of_contacts(cid, profile)
            for cid, profile in customers_store.many_with_contacts(session, customer_ids).items()}


def plan_attempts(session: Session, customer_ids: Sequence[str],
                  integrations: Sequence[IntegrationSnapshot],
                  profiles: dict[str, ProfileSnapshot] | None = None) -> list[Attempt]:
    """Attempts for every given customer × integration it is not linked to (``profiles``:
    snapshots the caller already has; the others are loaded)."""
    if profiles is None:
        profiles = load_profiles(session, customer_ids)
    linked = links_store.linked_pairs(session, customer_ids)
    suppressed = links_store.suppressed_pairs(session, customer_ids)
    return [plan_attempt(profiles[cid], integration,
                         suppressed=(cid, integration.id) in suppressed)
            for cid in customer_ids if cid in profiles
            for integration in integrations if (cid, integration.id) not in linked]


# ----------------------------------------------------------------------------------- recording


def _link_or_conflict(session: Session, actor: Actor, attempt: Attempt,
                      decision: AutolinkDecision) -> tuple[AutolinkDecision, int | None]:
    """Create the link for a ``linked`` decision; a unique violation becomes ``conflict``."""
    external_id = decision.external_customer_id
    assert external_id is not None
    try:
        link = create_link(session, customer_id=attempt.profile.customer_id,
                           integration_id=attempt.integration.id,
                           external_customer_id=external_id, method="auto", actor=actor)
    except Conflict as exc:
        reason = (f"{attempt.integration.name} record {external_id} matched the profile but was "
                  f"not linked: {exc}.")
        return replace(decision, outcome=Outcome.CONFLICT, reason=reason), None
    return decision, link.id


def judge(attempt: Attempt, exchange: Exchange | None) -> AutolinkDecision:
    """The decision for an attempt: its preset, the exchange's failure, or the rule's."""
    if attempt.preset is not None:
        return attempt.preset
    assert exchange is not None
    if exchange.error is not None:
        return AutolinkDecision(Outcome.ERROR, f"The auto-link request to "
                                f"{attempt.integration.name} failed ({exchange.error.kind}): "
                                f"{exchange.error.message}", None, 0)
    profile = attempt.profile
    return decide(profile.normalized_emails, profile.mobiles, attempt.integration.fields,
                  exchange.results)


def store_exchange(session: Session, actor: Actor, attempt: Attempt, exchange: Exchange
                   ) -> int:
    """Store the attempt's exchange and return its id."""
    record = record_exchange(session, exchange, integration_id=attempt.integration.id,
                             customer_id=attempt.profile.customer_id, actor=actor.username)
    session.flush()
    return record.id


def record_attempt(session: Session, actor: Actor, attempt: Attempt, exchange: Exchange | None,
                   *, trigger: AutolinkTrigger, now: datetime) -> AutolinkResult:
    """Store the exchange, decide, link (or conflict) and record the outcome, in ``session``."""
    exchange_id = store_exchange(session, actor, attempt, exchange) if exchange else None
    decision = judge(attempt, exchange)
    link_id = None
    if decision.outcome is Outcome.LINKED:
        decision, link_id = _link_or_conflict(session, actor, attempt, decision)
    row = AutolinkOutcome(
        customer_id=attempt.profile.customer_id, integration_id=attempt.integration.id,
        outcome=decision.outcome.value, reason=decision.reason,
        external_customer_id=decision.external_customer_id, candidates=decision.candidates,
        exchange_id=exchange_id, trigger=trigger.value, actor=actor.username, created_at=now)
    outcomes_store.add(session, row)
    return AutolinkResult(
        customer_id=attempt.profile.customer_id, integration_id=attempt.integration.id,
        integration_name=attempt.integration.name, outcome=decision.outcome,
        reason=decision.reason, external_customer_id=decision.external_customer_id,
        candidates=decision.candidates, exchange_id=exchange_id,
        error_kind=exchange.error.kind.value if exchange and exchange.error else None,
        outcome_id=row.id, link_id=link_id)


def record_attempts(session: Session, actor: Actor,
                    items: Sequence[tuple[Attempt, Exchange | None]], *,
                    trigger: AutolinkTrigger, now: datetime) -> list[AutolinkResult]:
    """``record_attempt`` for many attempts in ``session``, with multi-row Core inserts.

    The same rows and results as calling ``record_attempt`` for each in turn: the exchanges,
    the links (all in one savepoint; if any collides, each again in its own, so a lost race is
    a ``conflict`` outcome naming the holder), their ``link.created`` audit events and the
    outcome rows. For hot paths (the backfill).
    """
    sent = [exchange_row(x, integration_id=a.integration.id, customer_id=a.profile.customer_id,
                         actor=actor.username) for a, x in items if x is not None]
    stored = iter(insert_exchanges(session, sent))
    exchange_ids = [next(stored) if x is not None else None for _, x in items]
    decisions = [judge(a, x) for a, x in items]
    link_ids = _link_many(session, actor, [a for a, _ in items], decisions)
    rows = [dict(customer_id=a.profile.customer_id, integration_id=a.integration.id,
                 outcome=d.outcome.value, reason=d.reason,
                 external_customer_id=d.external_customer_id, candidates=d.candidates,
                 exchange_id=xid, trigger=trigger.value, actor=actor.username, created_at=now)
            for (a, _), d, xid in zip(items, decisions, exchange_ids, strict=True)]
    outcome_ids = outcomes_store.insert_many(session, rows)
    return [AutolinkResult(
        customer_id=a.profile.customer_id, integration_id=a.integration.id,
        integration_name=a.integration.name, outcome=d.outcome, reason=d.reason,
        external_customer_id=d.external_customer_id, candidates=d.candidates,
        exchange_id=xid, error_kind=x.error.kind.value if x and x.error else None,
        outcome_id=oid, link_id=lid)
        for (a, x), d, xid, oid, lid in zip(items, decisions, exchange_ids, outcome_ids,
                                            link_ids, strict=True)]


def _link_many(session: Session, actor: Actor, attempts: Sequence[Attempt],
               decisions: list[AutolinkDecision]) -> list[int | None]:
    """Create the links of the ``linked`` decisions (replacing a decision by ``conflict`` where
    the record or profile is taken); the new link ids, None where no link was made."""
    wanted = [k for k, d in enumerate(decisions) if d.outcome is Outcome.LINKED]
    link_ids: list[int | None] = [None] * len(decisions)
    if not wanted:
        return link_ids
    views = [LinkRecordView(attempts[k].profile.customer_id, attempts[k].integration.id,
                            attempts[k].integration.name,
                            str(decisions[k].external_customer_id), "auto", actor.username,
                            utcnow()) for k in wanted]
    rows = [dict(customer_id=v.customer_id, integration_id=v.integration_id,
                 external_customer_id=v.external_customer_id, method=v.method,
                 created_by=v.created_by, created_at=v.created_at) for v in views]
    ids = links_store.insert_links(session, rows)
    if ids is None:  # someone holds one of them: each in its own savepoint
        for k in wanted:
            decisions[k], link_ids[k] = _link_or_conflict(session, actor, attempts[k],
                                                          decisions[k])
        return link_ids
    audits = []
    for k, view, link_id in zip(wanted, views, ids, strict=True):
        link_ids[k] = link_id
        audits.append(audit_row(actor, "link.created", "customer", view.customer_id, None,
                                view.as_audit()))
    insert_audit_rows(session, audits)
    return link_ids


def refresh_new_links(ctx: ServiceContext, actor: Actor, results: Sequence[AutolinkResult]
                      ) -> list[AutolinkResult]:
    """Run the DETAILED lookup of every link just created (concurrently, no session held during
    the calls); a failed refresh is reported on its result and the link stays."""
    pairs = [(r.customer_id, r.integration_id) for r in results if r.link_id is not None]
    if not pairs:
        return list(results)
    refreshed = {(o.customer_id, o.integration_id): o
                 for o in refresh_pairs(ctx, actor, pairs, trigger=Trigger.DETAILED)}
    out = []
    for result in results:
        outcome = refreshed.get((result.customer_id, result.integration_id))
        if result.link_id is not None and (outcome is None or not outcome.ok):
            error = outcome.error if outcome else "the link was removed before its refresh"
            result = replace(result, refresh_error=error)
        out.append(result)
    return out


# --------------------------------------------------------------------------------- entry point


def _customer_attempts(ctx: ServiceContext, customer_id: str,
                       profile: ProfileSnapshot | None) -> list[Attempt]:
    with ctx.db.session(readonly=True) as session:
        if profile is None and customers_store.get(session, customer_id) is None:
            raise NotFound(f"customer {customer_id!r} does not exist; check the id or search "
                           "by email, phone or name")
        integrations = [snapshot_integration(ctx, i)
                        for i in integrations_store.with_autolink_on(session)]
        known = {customer_id: profile} if profile is not None else None
        return plan_attempts(session, [customer_id], integrations, known)


def apply_attempts(ctx: ServiceContext, actor: Actor, attempts: Sequence[Attempt],
                   exchanges: Iterable[Exchange | None], *, trigger: AutolinkTrigger
                   ) -> list[AutolinkResult]:
    """Record each attempt in its own transaction, then refresh the links it created."""
    results = []
    for attempt, exchange in zip(attempts, exchanges, strict=True):
        with ctx.db.session() as session:
            results.append(record_attempt(session, actor, attempt, exchange, trigger=trigger,
                                          now=ctx.now()))
    return refresh_new_links(ctx, actor, results)


def send_attempts(ctx: ServiceContext, attempts: Sequence[Attempt], *, trigger: Trigger
                  ) -> list[Exchange | None]:
    """Send the requests of ``attempts`` concurrently; None for attempts with a preset."""
    jobs = [(a.integration.target, a.request) for a in attempts
            if a.request is not None and a.integration.target is not None]
    sent = iter(lookup_many_sync(ctx.client, jobs, trigger=trigger))
    return [next(sent) if a.request is not None else None for a in attempts]


def autolink_customer(ctx: ServiceContext, actor: Actor, customer_id: str, *, trigger: str,
                      profile: ProfileSnapshot | None = None) -> list[AutolinkResult]:
    """Auto-link one profile to every active auto-link integration it is not linked to.

    One result (and one recorded outcome) per integration, ordered by integration name.
    Requests go out concurrently; nothing is linked unless the rule says so and the record is
    free. ``trigger``: customer_created, profile_opened, backfill or debugger. Raises NotFound
    for an unknown customer and PermissionDenied per ``check_trigger``. ``profile``: the
    snapshot of a profile just written (creating a customer), so it is not read back.
    """
    kind = check_trigger(actor, trigger)
    attempts = _customer_attempts(ctx, customer_id, profile)
    exchange_trigger = Trigger.BACKFILL if kind is AutolinkTrigger.BACKFILL else Trigger.AUTOLINK
    exchanges = send_attempts(ctx, attempts, trigger=exchange_trigger)
    return apply_attempts(ctx, actor, attempts, exchanges, trigger=kind)


# -------------------------------------------------------------------------------------- views


@dataclass(frozen=True)
class OutcomeView:
    """One recorded auto-link outcome, for the Auto-linking page."""

    id: int
    created_at: datetime
    customer_id: str
    customer_name: str
    integration_id: int
    integration_name: str
    outcome: Outcome
    reason: str
    external_customer_id: str | None
    candidates: int
    exchange_id: int | None
    trigger: str
    actor: str


@dataclass(frozen=True)
class OutcomeCounts:
    """Auto-link attempts per outcome (every outcome present, zeros included)."""

    total: dict[str, int]
    by_integration: dict[int, dict[str, int]]
    """Integration id → outcome → attempts (ids: two integrations may once have had one
    name)."""

    @property
    def attempts(self) -> int:
        """All attempts counted."""
        return sum(self.total.values())


def _zeros() -> dict[str, int]:
    return {o.value: 0 for o in Outcome}


class AutolinkService:
    """Auto-linking use cases: run it for a profile, and report what it did."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def autolink_customer(self, actor: Actor, customer_id: str, *, trigger: str
                          ) -> list[AutolinkResult]:
        """See the module-level ``autolink_customer``."""
        return autolink_customer(self.ctx, actor, customer_id, trigger=trigger)

    def recent_outcomes(self, actor: Actor, *, integration_id: int | None = None,
                        outcome: str | None = None, since: datetime | None = None,
                        limit: int = 200) -> list[OutcomeView]:
        """The newest recorded outcomes, optionally for one integration / outcome / period."""
        actor.require(Permission.VIEW_REPORTS, "view auto-link outcomes")
        if outcome is not None and outcome not in {o.value for o in Outcome}:
            allowed = ", ".join(o.value for o in Outcome)
            raise InvalidInput({"outcome": f"unknown outcome {outcome!r}; use one of {allowed}"})
        with self.ctx.db.session(readonly=True) as session:
            rows = outcomes_store.recent(session, integration_id=integration_id,
                                         outcome=outcome, since=since,
                                         limit=max(1, min(limit, 10_000)))
            return [OutcomeView(
                id=row.id, created_at=row.created_at, customer_id=row.customer_id,
                customer_name=customer_name, integration_id=row.integration_id,
                integration_name=integration_name, outcome=Outcome(row.outcome),
                reason=row.reason, external_customer_id=row.external_customer_id,
                candidates=row.candidates, exchange_id=row.exchange_id, trigger=row.trigger,
                actor=row.actor) for row, customer_name, integration_name in rows]

    def outcome_counts(self, actor: Actor, since: datetime | None = None) -> OutcomeCounts:
        """Every recorded attempt since ``since`` (all time when None), per outcome and
        integration, counted in SQL."""
        actor.require(Permission.VIEW_REPORTS, "view auto-link outcome counts")
        total = _zeros()
        by_integration: dict[int, dict[str, int]] = {}
        with self.ctx.db.session(readonly=True) as session:
            for integration_id, outcome, count in outcomes_store.counts(session, since):
                total[outcome] = total.get(outcome, 0) + count
                by_integration.setdefault(int(integration_id), _zeros())[outcome] = count
        return OutcomeCounts(total=total, by_integration=dict(sorted(by_integration.items())))
