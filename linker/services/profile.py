"""Opening a profile: the automatic work it triggers (refresh of stale data, auto-linking)."""

from __future__ import annotations

from dataclasses import dataclass

from linker.core.permissions import Actor, Permission
from linker.services.autolinking import AutolinkResult, autolink_customer
from linker.services.context import ServiceContext
from linker.services.errors import NotFound
from linker.services.refresh import RefreshOutcome, refresh_stale_links
from linker.store import customers as customers_store


@dataclass(frozen=True)
class OpenedProfile:
    """What opening a profile did: the refreshes it ran and the auto-link attempts it made."""

    customer_id: str
    refreshes: tuple[RefreshOutcome, ...]
    autolink: tuple[AutolinkResult, ...]

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

        Needs only VIEW_CUSTOMERS: the work runs on the product's behalf, but the actor's name
        is recorded on every exchange it makes.
        """
        actor.require(Permission.VIEW_CUSTOMERS, "open customer profiles")
        with self.ctx.db.session(readonly=True) as session:
            if customers_store.get(session, customer_id) is None:
                raise NotFound(f"no customer profile with id {customer_id!r}")
        refreshes = refresh_stale_links(self.ctx, actor, customer_id)
        results = autolink_customer(self.ctx, actor, customer_id, trigger="profile_opened")
        return OpenedProfile(customer_id, tuple(refreshes), tuple(results))
