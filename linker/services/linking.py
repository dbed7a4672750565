"""Manual linking: search external systems, link a record, unlink, clear suppression.

``create_link`` is the one place a Link row is made (manual and automatic linking both use it):
the database's unique constraints decide races, inside a savepoint, and the loser gets a
``Conflict`` naming who holds the link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.contract import CustomerProfile, search_request
from linker.core.grouping import group_hits
from linker.core.merge import describe_profile
from linker.core.permissions import Actor, Permission
from linker.lookup.exchange import Exchange, Trigger
from linker.lookup.fanout import lookup_many_sync
from linker.lookup.target import AdaptorTarget, InvalidTarget
from linker.services.audit import record_audit
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput, NotFound
from linker.services.refresh import refresh_pairs
from linker.services.refresh_outcome import RefreshOutcome
from linker.services.targets import target_for
from linker.store import customers as customers_store
from linker.store import integrations as integrations_store
from linker.store import links as links_store
from linker.store.exchanges import record_exchange
from linker.store.models import Customer, Integration, Link, Suppression, utcnow

SEARCH_FAILED = "Sorry, search is not working right now"
DEFAULT_COLUMNS = (("name", "Name"), ("email", "Email"), ("phone", "Phone"))


# ---------------------------------------------------------------------------------------------
# Views


@dataclass(frozen=True)
class LinkRecordView:
    """A link between a profile and an external record."""

    customer_id: str
    integration_id: int
    integration_name: str
    external_customer_id: str
    method: str
    created_by: str
    created_at: datetime

    def as_audit(self) -> dict[str, Any]:
        """The display dict stored in audit events."""
        return {"customer_id": self.customer_id, "integration_id": self.integration_id,
                "integration": self.integration_name,
                "external_customer_id": self.external_customer_id, "method": self.method,
                "created_by": self.created_by, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class LinkOutcome:
    """A manual link and the detailed refresh that followed it."""

    link: LinkRecordView
    refresh: RefreshOutcome | None


@dataclass(frozen=True)
class SearchField:
    """One field of the search form: a search query attribute and its prefilled value."""

    attribute: str
    label: str
    prefill: str
    integrations: tuple[str, ...]
    """The names of the chosen integrations that declare this attribute."""


@dataclass(frozen=True)
class SearchColumn:
    """One column of the results table (a search results attribute)."""

    attribute: str
    label: str


@dataclass(frozen=True)
class SystemHit:
    """One result of one integration: where it came from and its column values."""

    integration_id: int
    integration_name: str
    external_customer_id: str
    values: dict[str, str]
    linked_customer_id: str | None = None
    """The profile this record is already linked to, if any."""
    linked_customer: str | None = None
    """That profile as a person reads it: ``Name (id …)``."""

    def held_by_another(self, customer_id: str) -> str | None:
        """Who holds this record when it is linked to a profile other than ``customer_id``
        (``Name (id …)``); None when it is free or already this profile's."""
        if self.linked_customer_id and self.linked_customer_id != customer_id:
            return self.linked_customer or self.linked_customer_id
        return None


@dataclass(frozen=True)
class SearchRow:
    """One person: the systems that returned them and the merged column values."""

    systems: tuple[SystemHit, ...]
    values: dict[str, str]

    @property
    def system_names(self) -> tuple[str, ...]:
        """The **Systems** column."""
        return tuple(s.integration_name for s in self.systems)


@dataclass(frozen=True)
class SearchFailure:
    """An integration whose search failed, why, and the exchange that shows it."""

    integration_id: int
    integration_name: str
    error_kind: str
    message: str
    exchange_id: int | None


@dataclass(frozen=True)
class SkippedIntegration:
    """An integration that was not searched, and why."""

    integration_id: int
    integration_name: str
    reason: str


@dataclass(frozen=True)
class SearchOutcome:
    """The results of a search: rows per person, columns, failures and skipped systems."""

    rows: tuple[SearchRow, ...]
    columns: tuple[SearchColumn, ...]
    failures: tuple[SearchFailure, ...] = ()
    skipped: tuple[SkippedIntegration, ...] = ()
    searched: tuple[str, ...] = ()
    """Names of the integrations that got a request."""
    all_failed: bool = False
    message: str = ""
    """Set when every searched integration failed: what is wrong and what to do."""
    exchange_ids: dict[str, int] = field(default_factory=dict)
    """Exchange id per searched integration name."""

    @property
    def answered(self) -> tuple[str, ...]:
        """Names of the searched integrations that answered (a failed one is never here)."""
        failed = {f.integration_name for f in self.failures}
        return tuple(name for name in self.searched if name not in failed)


# ---------------------------------------------------------------------------------------------
# Grouping search results into one row per person


@dataclass(frozen=True)
class _Hit:
    integration_id: int
    result: CustomerProfile
    system: SystemHit


# ---------------------------------------------------------------------------------------------
# The link primitive


def link_view(link: Link, integration_name: str) -> LinkRecordView:
    """The view of a Link row."""
    return LinkRecordView(link.customer_id, link.integration_id, integration_name,
                    link.external_customer_id, link.method, link.created_by, link.created_at)


def _conflict_error(session: Session, customer_id: str, integration_id: int,
                    external_customer_id: str) -> Conflict | NotFound:
    integration = integrations_store.find(session, integration_id)
    customer = customers_store.get(session, customer_id)
    if integration is None:
        return NotFound(f"no integration with id {integration_id}")
    if customer is None:
        return NotFound(f"no customer profile with id {customer_id!r}")
    own = links_store.link_of(session, customer_id, integration_id)
    if own is not None:
        return Conflict(f"this profile is already linked to {integration.name} (external id "
                        f"{own.external_customer_id}); unlink it first to link another record")
    holder = links_store.holder_of(session, integration_id, external_customer_id)
    if holder is not None:
        other = customers_store.get(session, holder.customer_id)
        who = describe_profile(other.name if other else "", holder.customer_id)
        return Conflict(f"external record {external_customer_id} is already linked to {who} "
                        f"in {integration.name}; unlink it there first")
    return Conflict(f"linking {external_customer_id} in {integration.name} collided with "
                    "another change; try again")


def create_link(session: Session, *, customer_id: str, integration_id: int,
                external_customer_id: str, method: str, actor: Actor) -> Link:
    """Insert a Link in the caller's session and audit it (``link.created``); no refresh.

    The insert runs in a savepoint, so a lost race leaves the outer transaction usable. Raises
    ``Conflict`` naming the holder when the profile already has a link to the integration or
    the external record is linked to another profile, ``NotFound`` when either does not exist.
    """
    link = Link(customer_id=customer_id, integration_id=integration_id,
                external_customer_id=external_customer_id, method=method,
                created_by=actor.username, created_at=utcnow())
    try:
        links_store.add_link(session, link)
    except IntegrityError:
        raise _conflict_error(session, customer_id, integration_id,
                                external_customer_id) from None
    integration = integrations_store.find(session, integration_id)
    name = integration.name if integration else str(integration_id)
    record_audit(session, actor, "link.created", "customer", customer_id, None,
                 link_view(link, name).as_audit())
    return link


# ---------------------------------------------------------------------------------------------
# Helpers of the service


_customer = customers_store.load
_integration = integrations_store.load


def _chosen(session: Session, customer_id: str | None, integration_ids: Sequence[int] | None
            ) -> tuple[list[Integration], list[SkippedIntegration]]:
    """The integrations to search; ``None`` means all active ones the profile is not linked to.

    Inactive integrations named explicitly are skipped (they never get a lookup).
    """
    if integration_ids is None:
        return links_store.unlinked_active_integrations(session, customer_id), []
    chosen: list[Integration] = []
    skipped: list[SkippedIntegration] = []
    for integration_id in dict.fromkeys(integration_ids):
        integration = _integration(session, integration_id)
        if integration.active:
            chosen.append(integration)
        else:
            skipped.append(SkippedIntegration(integration.id, integration.name,
                                              "inactive: an admin must activate it first"))
    return chosen, skipped


def attribute_pairs(rows: Sequence[Any]) -> list[tuple[str, str]]:
    """``(attribute, label)`` pairs of configured attribute rows, blank ones left out."""
    pairs = []
    for row in rows or []:
        attribute = str(row.get("attribute", "")).strip()
        if attribute:
            pairs.append((attribute, str(row.get("label", "")).strip() or attribute))
    return pairs


_EMAIL_KEYS = {"email", "emails", "emailaddress", "email_address"}
_PHONE_KEYS = {"phone", "phones", "mobile", "phonenumber", "phone_number", "mobilephone"}
_NAME_KEYS = {"name", "fullname", "full_name", "customername"}


def prefill_value(customer: Customer | None, attribute: str) -> str:
    """The profile's value for a search field: main email, first (mobile) phone, name,
    address, or the profile's own custom attribute of that name; ``""`` when none fits."""
    if customer is None:
        return ""
    key = attribute.strip().lower()
    if key in _EMAIL_KEYS:
        return customer.emails[0].original if customer.emails else ""
    if key in _PHONE_KEYS:
        mobiles = [p for p in customer.phones if p.type == "MOBILE"]
        phones = mobiles or list(customer.phones)
        return phones[0].e164 if phones else ""
    if key in _NAME_KEYS:
        return customer.name or ""
    if key == "address":
        return customer.address or ""
    own = customer.custom_attributes or {}
    return str(own[attribute]) if attribute in own else ""


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class _Job:
    integration_id: int
    integration_name: str
    target: AdaptorTarget
    request_fields: dict[str, str]
    columns: tuple[tuple[str, str], ...]


def _plan_search(ctx: ServiceContext, session: Session, customer_id: str | None,
                 integration_ids: Sequence[int] | None, fields: dict[str, str]
                 ) -> tuple[list[_Job], list[SkippedIntegration], list[SearchColumn]]:
    if customer_id is not None:
        _customer(session, customer_id)
    chosen, skipped = _chosen(session, customer_id, integration_ids)
    filled = {k.strip(): str(v).strip() for k, v in fields.items()
              if k and v is not None and str(v).strip()}
    jobs: list[_Job] = []
    columns: dict[str, str] = {}
    for integration in chosen:
        declared = attribute_pairs(integration.search_query_attributes)
        if not declared:
            skipped.append(SkippedIntegration(
                integration.id, integration.name,
                "it has no search query attributes; an admin can add them"))
            continue
        sent = {attribute: filled[attribute] for attribute, _ in declared if attribute in filled}
        if not sent:
            labels = ", ".join(label for _, label in declared)
            skipped.append(SkippedIntegration(
                integration.id, integration.name, f"none of its search fields was filled "
                f"({labels})"))
            continue
        try:
            target = target_for(integration, ctx.secrets)
        except InvalidTarget as exc:
            skipped.append(SkippedIntegration(integration.id, integration.name,
                                              f"its adaptor settings are unusable: {exc}"))
            continue
        result_columns = tuple(attribute_pairs(integration.search_results_attributes))
        for attribute, label in result_columns:
            columns.setdefault(attribute, label)
        jobs.append(_Job(integration.id, integration.name, target, sent, result_columns))
    if not columns:
        columns = dict(DEFAULT_COLUMNS)
    return jobs, skipped, [SearchColumn(a, label) for a, label in columns.items()]


def _linked_to(session: Session, integration_id: int, external_ids: Sequence[str]
               ) -> dict[str, tuple[str, str]]:
    """External id → (customer id, description) for the records already linked."""
    rows = links_store.holders_of(session, integration_id, external_ids)
    return {ext: (cid, describe_profile(name, cid)) for ext, cid, name in rows}


def _hits(session: Session, job: _Job, results: Sequence[CustomerProfile],
          attributes: Sequence[str]) -> list[_Hit]:
    linked = _linked_to(session, job.integration_id,
                        [r.external_customer_id for r in results])
    hits = []
    for result in results:
        holder = linked.get(result.external_customer_id)
        system = SystemHit(
            job.integration_id, job.integration_name, result.external_customer_id,
            {a: _text(result.attribute(a)) for a in attributes},
            holder[0] if holder else None, holder[1] if holder else None)
        hits.append(_Hit(system.integration_id, result, system))
    return hits


def _rows(hits: Sequence[_Hit], attributes: Sequence[str]) -> tuple[SearchRow, ...]:
    rows = []
    for group in group_hits([(h.integration_id, h.result) for h in hits]):
        systems = tuple(hits[i].system for i in group)
        values = {a: next((s.values[a] for s in systems if s.values.get(a)), "")
                  for a in attributes}
        rows.append(SearchRow(systems, values))
    return tuple(rows)


def _all_failed_message(failures: Sequence[SearchFailure]) -> str:
    reasons = "; ".join(f"{f.integration_name} failed ({f.error_kind}: {f.message})"
                        for f in failures)
    return (f"{SEARCH_FAILED}: {reasons}. Try again in a moment, or open the exchange of each "
            "failing system in the debugger.")


# ---------------------------------------------------------------------------------------------
# The service


@dataclass(frozen=True)
class SystemChoice:
    """An integration as the link workbench offers it: no settings, only what agents need."""

    id: int
    name: str
    active: bool


class LinkingService:
    """Search, link, unlink and suppression for agents (permission LINK)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def systems(self, actor: Actor) -> list[SystemChoice]:
        """Every integration by name (for *Search In* and "Why (not) linked?"), without settings:
        agents may not see integration settings, but they need to choose a system."""
        actor.require(Permission.VIEW_CUSTOMERS, "list external systems")
        with self.ctx.db.session(readonly=True) as session:
            rows = links_store.systems(session)
        return [SystemChoice(i, n, a) for i, n, a in rows]

    def search_fields(self, actor: Actor, integration_ids: list[int] | None,
                      customer_id: str | None = None) -> list[SearchField]:
        """The union of the chosen integrations' search query attributes, prefilled from the
        profile (``integration_ids=None``: all active integrations it is not linked to)."""
        actor.require(Permission.LINK, "search external systems")
        with self.ctx.db.session(readonly=True) as session:
            customer = _customer(session, customer_id) if customer_id is not None else None
            chosen, _ = _chosen(session, customer_id, integration_ids)
            found: dict[str, tuple[str, list[str]]] = {}
            for integration in chosen:
                for attribute, label in attribute_pairs(integration.search_query_attributes):
                    found.setdefault(attribute, (label, []))[1].append(integration.name)
            return [SearchField(attribute, label, prefill_value(customer, attribute),
                                tuple(names))
                    for attribute, (label, names) in found.items()]

    def search(self, actor: Actor, customer_id: str | None, *,
               integration_ids: list[int] | None, fields: dict[str, str]) -> SearchOutcome:
        """BASIC search of one, several or all unlinked active integrations, concurrently.

        Each integration receives only the filled fields it declares; one failing integration
        never hides the others' results. Results are grouped into one row per person.
        """
        actor.require(Permission.LINK, "search external systems")
        if not any(str(v).strip() for v in fields.values() if v is not None):
            raise InvalidInput({"fields": "fill in at least one search field"})
        with self.ctx.db.session(readonly=True) as session:
            jobs, skipped, columns = _plan_search(self.ctx, session, customer_id,
                                                  integration_ids, fields)
        if not jobs:
            return SearchOutcome((), tuple(columns), skipped=tuple(skipped))
        exchanges = lookup_many_sync(
            self.ctx.client,
            [(job.target, search_request(customer_id, job.request_fields)) for job in jobs],
            trigger=Trigger.SEARCH)
        return self._collect(actor, customer_id, jobs, exchanges, skipped, columns)

    def _collect(self, actor: Actor, customer_id: str | None, jobs: Sequence[_Job],
                 exchanges: Sequence[Exchange], skipped: Sequence[SkippedIntegration],
                 columns: Sequence[SearchColumn]) -> SearchOutcome:
        attributes = [c.attribute for c in columns]
        hits: list[_Hit] = []
        failures: list[SearchFailure] = []
        exchange_ids: dict[str, int] = {}
        with self.ctx.db.session() as session:
            for job, exchange in zip(jobs, exchanges, strict=True):
                record = record_exchange(session, exchange, integration_id=job.integration_id,
                                         customer_id=customer_id, actor=actor.username)
                exchange_ids[job.integration_name] = record.id
                if exchange.error is not None:
                    failures.append(SearchFailure(job.integration_id, job.integration_name,
                                                  exchange.error.kind.value,
                                                  exchange.error.message, record.id))
                    continue
                hits.extend(_hits(session, job, exchange.results, attributes))
        all_failed = len(failures) == len(jobs)
        return SearchOutcome(
            rows=_rows(hits, attributes), columns=tuple(columns), failures=tuple(failures),
            skipped=tuple(skipped), searched=tuple(j.integration_name for j in jobs),
            all_failed=all_failed, message=_all_failed_message(failures) if all_failed else "",
            exchange_ids=exchange_ids)

    def link(self, actor: Actor, customer_id: str, integration_id: int,
             external_customer_id: str) -> LinkOutcome:
        """Link the profile to an external record by hand, then run a DETAILED refresh."""
        actor.require(Permission.LINK, "link profiles to external systems")
        external_id = (external_customer_id or "").strip()
        if not external_id:
            raise InvalidInput({"external_customer_id": "pick a search result to link"})
        with self.ctx.db.session() as session:
            _customer(session, customer_id)
            integration = _integration(session, integration_id)
            if not integration.active:
                raise InvalidInput({"integration": f"{integration.name} is inactive; an admin "
                                    "must activate it before profiles can be linked to it"})
            link = create_link(session, customer_id=customer_id, integration_id=integration_id,
                               external_customer_id=external_id, method="manual", actor=actor)
            view = link_view(link, integration.name)
        outcomes = refresh_pairs(self.ctx, actor, [(customer_id, integration_id)],
                                 trigger=Trigger.DETAILED)
        return LinkOutcome(view, outcomes[0] if outcomes else None)

    def unlink(self, actor: Actor, customer_id: str, integration_id: int) -> None:
        """Remove one link and its pulled data, and suppress auto-linking for that pair."""
        actor.require(Permission.LINK, "unlink profiles")
        with self.ctx.db.session() as session:
            _customer(session, customer_id)
            integration = _integration(session, integration_id)
            # FOR UPDATE: a concurrent unlink waits here and then finds the link gone
            link = links_store.link_of(session, customer_id, integration_id, for_update=True)
            if link is None or not _remove_link(session, actor, link, integration):
                raise NotFound(f"this profile is not linked to {integration.name}")

    def unlink_all(self, actor: Actor, customer_id: str) -> int:
        """Remove every link of the profile (see ``unlink``); returns how many were removed."""
        actor.require(Permission.LINK, "unlink profiles")
        with self.ctx.db.session() as session:
            _customer(session, customer_id)
            rows = links_store.links_of(session, customer_id, for_update=True)
            return sum(1 for link, integration in rows
                       if _remove_link(session, actor, link, integration))

    def clear_suppression(self, actor: Actor, customer_id: str, integration_id: int) -> None:
        """Let auto-linking run again for this profile and integration."""
        actor.require(Permission.LINK, "clear auto-link suppression")
        with self.ctx.db.session() as session:
            _customer(session, customer_id)
            integration = _integration(session, integration_id)
            suppression = links_store.suppression_of(session, customer_id, integration_id)
            if suppression is None:
                raise NotFound(f"auto-linking is not suppressed for this profile and "
                               f"{integration.name}")
            before = _suppression_audit(suppression, integration)
            links_store.delete_suppression(session, suppression)
            record_audit(session, actor, "suppression.cleared", "customer", customer_id,
                         before, None)


def _suppression_audit(suppression: Suppression, integration: Integration) -> dict[str, Any]:
    return {"customer_id": suppression.customer_id, "integration_id": integration.id,
            "integration": integration.name, "created_by": suppression.created_by,
            "created_at": suppression.created_at.isoformat()}


def _remove_link(session: Session, actor: Actor, link: Link, integration: Integration) -> bool:
    """Delete a link and its pulled data (the emails and phones the integration brought to
    the profile included; those entered locally stay), suppress auto-linking for the pair,
    audit each change.

    Returns False (and changes nothing) when a concurrent transaction removed the link first,
    so each real removal is audited exactly once. Statements with RETURNING tell what really
    changed, so a lost race is no ORM "expected to delete 1 row" warning.
    """
    before = link_view(link, integration.name).as_audit()
    if not links_store.delete_link(session, link):
        return False
    record_audit(session, actor, "link.removed", "customer", link.customer_id, before, None)
    _remove_pulled_contacts(session, actor, link.customer_id, integration.name)
    now = utcnow()
    if links_store.add_suppression(session, link.customer_id, integration.id, actor.username,
                                   now):
        suppression = Suppression(customer_id=link.customer_id, integration_id=integration.id,
                                  created_by=actor.username, created_at=now)
        record_audit(session, actor, "suppression.added", "customer", link.customer_id, None,
                     _suppression_audit(suppression, integration))
    return True


def _remove_pulled_contacts(session: Session, actor: Actor, customer_id: str,
                            integration_name: str) -> None:
    """Take the emails and phones an unlinked integration brought off the profile (as the
    reference product does), and audit what went (``customer.contacts_removed``)."""
    emails, phones = customers_store.remove_pulled_contacts(session, customer_id,
                                                            integration_name)
    if emails or phones:
        record_audit(session, actor, "customer.contacts_removed", "customer", customer_id,
                     {"integration": integration_name, "emails": emails, "phones": phones},
                     None)
