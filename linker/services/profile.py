"""Opening a profile: the automatic work it triggers (refresh of stale data, auto-linking)."""

from __future__ import annotations

from dataclasses import dataclass

from linker.core.permissions import SYSTEM, Actor, Permission
from linker.services.autolinking import AutolinkResult, autolink_customer
from linker.services.context import ServiceContext
from linker.services.errors import NotFound
from linker.services.refresh import refresh_stale_links
from linker.services.refresh_outcome import RefreshOutcome
from linker.store import customers as customers_store

ACTOR_NAME_MAX = 100
"""The longest actor name the audit, exchange and outcome tables keep."""


def on_open_actor(viewer: Actor) -> Actor:
    """The actor of the work opening a profile triggers: the system (its role), named
    ``system, on open by <viewer>`` so the audit trail, the exchange log and the auto-link
    outcomes say both who acted and whose opening caused it; never the viewer alone (a
    read-only role never causes a write attributed to itself)."""
    name = f"{SYSTEM.username}, on open by {viewer.username}"
    if len(name) > ACTOR_NAME_MAX:
        name = name[:ACTOR_NAME_MAX - 1] + "…"
    return Actor(name, SYSTEM.role)


@dataclass(frozen=True)
class OpenedProfile:
    """What opening a profile did: the refreshes it ran and the auto-link attempts it made,
    and the actor they were recorded under (``acted_as``)."""

    customer_id: str
    refreshes: tuple[RefreshOutcome, ...]
    autolink: tuple[AutolinkResult, ...]
    acted_as: str = SYSTEM.username

    @property
    def newly_linked(self) -> tuple[str, ...]:
        """Names of the integrations the profile was auto-linked to just now."""
        return tuple(r.integration_name for r in self.autolink if r.link_id is not None)


class ProfileService:
    """What happens when someone opens a customer profile."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def open(self, actor: Actor, customer_id: str) -> OpenedProfile:
        """Refresh linked data missing or older than the TTL, then auto-link the profile to the
        active integrations it is not linked to, and say what happened.

        Needs only VIEW_CUSTOMERS: the work runs on the product's behalf, as ``on_open_actor``
        (``system, on open by <viewer>``) on every audit event, exchange and outcome it records.
        """
        actor.require(Permission.VIEW_CUSTOMERS, "open customer profiles")
        with self.ctx.db.session(readonly=True) as session:
            if customers_store.get(session, customer_id) is None:
                raise NotFound(f"no customer profile with id {customer_id!r}")
        system = on_open_actor(actor)
        refreshes = refresh_stale_links(self.ctx, system, customer_id)
        results = autolink_customer(self.ctx, system, customer_id, trigger="profile_opened")
        return OpenedProfile(customer_id, tuple(refreshes), tuple(results), system.username)
