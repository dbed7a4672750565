"""The Lookup Adaptor Debugger's workflows, as in the reference product, step by step.

- *Autolinking + Detailed*: the auto-link request a profile would send to one adaptor, the
  rule's decision with its exact reason, then (when it would link) the DETAILED lookup of the
  matched record and what the profile would get;
- *Basic + Detailed*: a manual search with the adaptor's search fields, the rows an agent
  would see, then the DETAILED lookup of a chosen row.

Every request is a real call, stored in the exchange log with trigger ``debugger``; nothing
is linked (the page's Link button calls ``LinkingService.link``). Adaptor answers never raise
out of a workflow: a failed call is a step with its error.

    run = svc.debugger.autolink(actor, customer_id, integration_id)
    run.steps[0].exchange, run.decision.outcome, run.decision.reason, run.detailed
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from linker.contract import LookupRequest, detailed_request, search_request
from linker.contract.models import CustomerProfile, RequestKind
from linker.core.autolink import AutolinkDecision, Outcome
from linker.core.permissions import Actor, Permission
from linker.lookup import AdaptorTarget, Exchange, InvalidTarget, Trigger
from linker.services.autolinking import (
    ProfileSnapshot,
    judge,
    plan_attempt,
    snapshot_integration,
)
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService, CustomerView
from linker.services.errors import InvalidInput, NotFound
from linker.services.linking import attribute_pairs, prefill_value
from linker.services.targets import target_for
from linker.store import customers as customers_store
from linker.store import integrations as integrations_store
from linker.store import links as links_store
from linker.store.exchanges import StoredExchange, record_exchange, stored_exchange
from linker.store.models import Customer, Integration


@dataclass(frozen=True)
class DebugStep:
    """One step of a workflow: the exchange it stored, or why no request was sent."""

    title: str
    exchange: StoredExchange | None
    note: str = ""


@dataclass(frozen=True)
class DetailedPreview:
    """What one DETAILED answer would put on the profile (nothing is written)."""

    external_customer_id: str
    name: str
    address: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    custom_attributes: dict[str, str]
    transactions: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class SearchResultRow:
    """One result of a Basic search as the agent's results table would show it."""

    external_customer_id: str
    values: dict[str, str]


@dataclass(frozen=True)
class DebugRun:
    """A workflow run: its steps in order and their interpretation."""

    workflow: str
    customer_id: str
    integration_id: int
    integration_name: str
    steps: tuple[DebugStep, ...]
    decision: AutolinkDecision | None = None
    """Autolinking + Detailed: the rule's decision and its exact reason."""
    columns: tuple[tuple[str, str], ...] = ()
    """Basic + Detailed: (attribute, label) of the search results columns."""
    rows: tuple[SearchResultRow, ...] = ()
    """Basic + Detailed: the rows an agent would see."""
    detailed: DetailedPreview | None = None
    detailed_problem: str = ""
    """Why there is no DETAILED preview (no single result, a failed call, …)."""

    @property
    def linkable_external_id(self) -> str | None:
        """The record the Link button would link: the DETAILED preview's."""
        return self.detailed.external_customer_id if self.detailed else None


AUTOLINK_WORKFLOW = "autolink_detailed"
BASIC_WORKFLOW = "basic_detailed"


def _preview(exchange: Exchange) -> tuple[DetailedPreview | None, str]:
    raw_results = exchange.results
    if exchange.error is not None:
        return None, (f"The DETAILED lookup failed ({exchange.error.kind.value}): "
                      f"{exchange.error.message}")
    if len(raw_results) != 1:
        return None, (f"The DETAILED lookup returned {len(raw_results)} results; the contract "
                      "requires exactly one, so the profile would get nothing.")
    result = raw_results[0]
    return DetailedPreview(
        external_customer_id=result.external_customer_id,
        name=result.name or "", address=result.address or "",
        emails=tuple(e.original for e in result.emails),
        phones=tuple(f"{p.original} ({p.type.value})" for p in result.phones),
        custom_attributes={str(k): str(v) for k, v in result.custom_attributes.items()},
        transactions=tuple(t.to_wire() for t in result.transactions)), ""


class DebuggerService:
    """Runs the debugger's workflows (developers and admins: TEST_INTEGRATIONS)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def find_profile(self, actor: Actor, *, email: str = "", phone: str = ""
                     ) -> CustomerView | None:
        """The profile with this email, else the one with this phone, else None
        ("Customer not found"). The newest profile wins when several share a value."""
        actor.require(Permission.TEST_INTEGRATIONS, "use the adaptor debugger")
        customers = CustomerService(self.ctx)
        for criteria in ({"email": email.strip()}, {"phone": phone.strip()}):
            value = next(iter(criteria.values()))
            if not value:
                continue
            try:
                found = customers.find(actor, limit=1, **criteria)
            except InvalidInput:
                continue
            if found:
                return customers.get(actor, found[0].id)
        return None

    def autolink(self, actor: Actor, customer_id: str, integration_id: int) -> DebugRun:
        """Autolinking + Detailed for one profile and adaptor. An adaptor without auto-linking
        fields (or a profile without values for them) sends no request and says so."""
        actor.require(Permission.TEST_INTEGRATIONS, "use the adaptor debugger")
        with self.ctx.db.session(readonly=True) as s:
            customer = self._customer(s, customer_id)
            integration = self._integration(s, integration_id)
            snapshot = snapshot_integration(self.ctx, integration)
            profile = ProfileSnapshot.of(customer)
            suppressed = links_store.suppression_of(s, customer_id, integration_id) is not None
        attempt = plan_attempt(profile, snapshot, suppressed=False)
        if attempt.request is None:
            assert attempt.preset is not None
            step = DebugStep("Auto-link lookup", None,
                             "No request would be sent: " + attempt.preset.reason)
            return DebugRun(AUTOLINK_WORKFLOW, customer_id, integration_id, integration.name,
                            (step,), decision=attempt.preset,
                            detailed_problem="No DETAILED request follows.")
        assert snapshot.target is not None
        stored, sent = self._send(actor, snapshot.target, attempt.request,
                                  RequestKind.AUTOLINK, integration_id, customer_id)
        decision = judge(attempt, sent)
        if suppressed and decision.outcome is Outcome.LINKED:
            decision = AutolinkDecision(
                Outcome.SUPPRESSED, decision.reason + f" But the profile was unlinked from "
                f"{integration.name} before, so real auto-linking would not link it (and sends "
                "no request); clear the suppression in the workbench first.",
                decision.external_customer_id, decision.candidates)
        steps = [DebugStep("Auto-link lookup", stored)]
        if decision.external_customer_id is None:
            return DebugRun(AUTOLINK_WORKFLOW, customer_id, integration_id, integration.name,
                            tuple(steps), decision=decision,
                            detailed_problem="The rule would not link, so no DETAILED lookup "
                                             "follows.")
        detailed_step, preview, problem = self._detailed(
            actor, customer, integration, snapshot.target, decision.external_customer_id)
        steps.append(detailed_step)
        return DebugRun(AUTOLINK_WORKFLOW, customer_id, integration_id, integration.name,
                        tuple(steps), decision=decision, detailed=preview,
                        detailed_problem=problem)

    def basic(self, actor: Actor, customer_id: str, integration_id: int,
              fields: Mapping[str, str], *, detail_external_id: str | None = None) -> DebugRun:
        """Basic + Detailed: a manual search with ``fields`` (attribute → value), the rows an
        agent would see, then the DETAILED lookup of ``detail_external_id`` (default: the
        only row, when there is exactly one)."""
        actor.require(Permission.TEST_INTEGRATIONS, "use the adaptor debugger")
        filled = {k: v.strip() for k, v in fields.items() if v and v.strip()}
        if not filled:
            raise InvalidInput({"fields": "fill at least one search field"})
        with self.ctx.db.session(readonly=True) as s:
            customer = self._customer(s, customer_id)
            integration = self._integration(s, integration_id)
            target = self._target(integration)
            columns = tuple(attribute_pairs(integration.search_results_attributes))
        stored, sent = self._send(actor, target, search_request(customer_id, filled),
                                  RequestKind.SEARCH, integration_id, customer_id)
        rows = tuple(SearchResultRow(r.external_customer_id,
                                     {attr: _display(r, attr) for attr, _ in columns})
                     for r in sent.results)
        steps = [DebugStep("Basic search", stored)]
        chosen = detail_external_id or (rows[0].external_customer_id if len(rows) == 1
                                        else None)
        if chosen is None:
            problem = ("No DETAILED lookup: the search failed." if sent.error else
                       "Pick a row to send its DETAILED lookup." if rows else
                       "No row came back, so no DETAILED lookup follows.")
            return DebugRun(BASIC_WORKFLOW, customer_id, integration_id, integration.name,
                            tuple(steps), columns=columns, rows=rows, detailed_problem=problem)
        detailed_step, preview, problem = self._detailed(actor, customer, integration, target,
                                                         chosen)
        steps.append(detailed_step)
        return DebugRun(BASIC_WORKFLOW, customer_id, integration_id, integration.name,
                        tuple(steps), columns=columns, rows=rows, detailed=preview,
                        detailed_problem=problem)

    def search_fields(self, actor: Actor, integration_id: int, customer_id: str
                      ) -> tuple[tuple[str, str, str], ...]:
        """(attribute, label, value prefilled from the profile) of an adaptor's search query
        attributes, for the Basic form (an adaptor without any gets an ``email`` field)."""
        actor.require(Permission.TEST_INTEGRATIONS, "use the adaptor debugger")
        with self.ctx.db.session(readonly=True) as s:
            customer = self._customer(s, customer_id)
            integration = self._integration(s, integration_id)
            pairs = attribute_pairs(integration.search_query_attributes) or [("email", "Email")]
            return tuple((attribute, label, prefill_value(customer, attribute))
                         for attribute, label in pairs)

    def autolink_fields(self, actor: Actor, integration_id: int) -> tuple[str, ...]:
        """The adaptor's auto-linking fields when auto-linking is on (empty: no auto-link
        request would be sent)."""
        actor.require(Permission.TEST_INTEGRATIONS, "use the adaptor debugger")
        with self.ctx.db.session(readonly=True) as s:
            integration = self._integration(s, integration_id)
            return (tuple(str(f) for f in integration.autolink_fields)
                    if integration.autolink_enabled else ())

    # -- helpers ---------------------------------------------------------------------------

    def _detailed(self, actor: Actor, customer: Customer, integration: Integration,
                  target: AdaptorTarget, external_id: str
                  ) -> tuple[DebugStep, DetailedPreview | None, str]:
        request = detailed_request(
            customer.id, external_id, name=customer.name or None,
            emails=[e.normalized for e in customer.emails],
            phones=[p.e164 for p in customer.phones],
            custom_attributes={str(k): str(v)
                               for k, v in (customer.custom_attributes or {}).items()})
        stored, sent = self._send(actor, target, request, RequestKind.DETAILED,
                                  integration.id, customer.id)
        preview, problem = _preview(sent)
        return DebugStep(f"Detailed lookup of {external_id}", stored), preview, problem

    def _send(self, actor: Actor, target: AdaptorTarget, request: LookupRequest,
              kind: RequestKind, integration_id: int, customer_id: str
              ) -> tuple[StoredExchange, Exchange]:
        """Send one request (never raises for an adaptor's answer) and store it."""
        exchange = self.ctx.client.lookup_sync(target, request, kind=kind,
                                               trigger=Trigger.DEBUGGER)
        with self.ctx.db.session() as s:
            record = record_exchange(s, exchange, integration_id=integration_id,
                                     customer_id=customer_id, actor=actor.username)
            return stored_exchange(record), exchange

    def _target(self, integration: Integration) -> AdaptorTarget:
        try:
            return target_for(integration, self.ctx.secrets)
        except InvalidTarget as exc:
            raise InvalidInput({"settings": f"{integration.name} cannot be called: {exc}; fix "
                                            "its settings on the Integrations page"}) from None

    @staticmethod
    def _customer(s: Any, customer_id: str) -> Customer:
        customer = customers_store.with_contacts(s, customer_id)
        if customer is None:
            raise NotFound(f"customer {customer_id} does not exist")
        return customer

    @staticmethod
    def _integration(s: Any, integration_id: int) -> Integration:
        integration = integrations_store.find(s, integration_id)
        if integration is None:
            raise NotFound(f"integration {integration_id} does not exist")
        return integration


def _display(result: CustomerProfile, attribute: str) -> str:
    """A search result's value for a results column (missing → "")."""
    value = result.attribute(attribute)
    return "" if value is None else str(value)
