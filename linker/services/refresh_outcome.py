"""What a detailed refresh works from and what it did: ``RefreshPlan``, ``RefreshOutcome`` and
the failure rule, shared by the one-at-a-time path (``services.refresh``) and the set-wise one
(``services.refresh_batch``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from linker.contract import LookupRequest
from linker.core.identity import PhoneType, parse_phone_type
from linker.core.merge import DroppedContact
from linker.lookup.exchange import Exchange
from linker.lookup.target import AdaptorTarget

REFRESHED = "refreshed"
FAILED = "failed"
SKIPPED = "skipped"
TAKEN = "another profile took this value at the same time; it was not added"
"""Why a new email or phone was dropped when its insert lost a race."""


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


def outcome_of(plan: RefreshPlan, status: str, **fields: Any) -> RefreshOutcome:
    """The outcome of ``plan`` with ``status`` and the given other fields."""
    return RefreshOutcome(plan.customer_id, plan.integration_id, plan.integration_name,
                          plan.external_customer_id, status, **fields)


def link_changed(plan: RefreshPlan, exchange_id: int | None) -> RefreshOutcome:
    """``skipped``: the link was removed or re-pointed during the lookup."""
    return outcome_of(plan, SKIPPED, exchange_id=exchange_id,
                      message="the link changed during the lookup; its answer was not applied")


def gone(plan: RefreshPlan, exchange_id: int) -> RefreshOutcome:
    """``skipped``: the profile or the integration was deleted during the lookup."""
    return outcome_of(plan, SKIPPED, message="the profile or integration no longer exists",
                      exchange_id=exchange_id)


def failure_of(exchange: Exchange | None, plan: RefreshPlan) -> tuple[str | None, str]:
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


def phone_type(value: str) -> PhoneType:
    """A stored phone type as the enum (OTHER when unknown)."""
    return parse_phone_type(value) or PhoneType.OTHER
