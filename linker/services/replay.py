"""Replay: send a stored request again now (re-signed, new time and correlation id), store
the new exchange with trigger ``replay`` and diff the two response bodies.

    result = ReplayService(ctx).replay(actor, exchange_id)
    result.original, result.replay      # StoredExchange values
    result.diff.changes                 # JSON paths added / removed / changed
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from linker.contract import LookupRequest
from linker.core.permissions import Actor, Permission
from linker.jsondiff import BodyDiff, diff_bodies
from linker.lookup import InvalidTarget, Trigger
from linker.redaction import MASK
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, NotFound
from linker.services.targets import target_for
from linker.store import integrations as integrations_store
from linker.store.exchanges import StoredExchange, load_exchange, record_exchange, stored_exchange


@dataclass(frozen=True)
class ReplayResult:
    """The stored exchange, its replay (stored too), and how the response bodies differ."""

    original: StoredExchange
    replay: StoredExchange
    diff: BodyDiff
    url_changed: bool
    """True when the integration's URL is no longer the one the original was sent to."""


def _request_of(exchange: StoredExchange) -> LookupRequest:
    if exchange.body_truncated and len(exchange.request.body.encode()) >= 256 * 1024:
        raise InvalidInput({"exchange": f"exchange {exchange.id}'s request body was cut at the "
                                        "storage cap, so it cannot be sent again"})
    if MASK in exchange.request.body:
        raise InvalidInput({"exchange": f"exchange {exchange.id}'s request body contains masked "
                                        "secrets, so it cannot be sent again as it was"})
    try:
        return LookupRequest.model_validate_json(exchange.request.body)
    except ValidationError:
        raise InvalidInput({"exchange": f"exchange {exchange.id}'s stored request is not a "
                                        "lookup request envelope, so it cannot be replayed"}
                           ) from None


class ReplayService:
    """Replays stored exchanges (developers and admins)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def replay(self, actor: Actor, exchange_id: int) -> ReplayResult:
        """Send exchange ``exchange_id``'s request again now with the integration's current
        URL and credentials; store and return the new exchange and the body diff.

        NotFound when the exchange or its integration is gone; InvalidInput when the stored
        request cannot be sent again or the integration's settings cannot work. Adaptor
        failures are not errors: they are the replay's exchange.
        """
        actor.require(Permission.REPLAY_EXCHANGES, "replay exchanges")
        with self.ctx.db.session(readonly=True) as s:
            original = load_exchange(s, exchange_id)
            if original is None:
                raise NotFound(f"exchange {exchange_id} does not exist (it may have been pruned)")
            integration = (integrations_store.find(s, original.integration_id)
                           if original.integration_id is not None else None)
            if integration is None:
                raise NotFound(f"the integration of exchange {exchange_id} "
                               f"({original.integration_name or 'none'}) no longer exists; "
                               "replay needs its URL and credentials")
            try:
                target = target_for(integration, self.ctx.secrets)
            except InvalidTarget as exc:
                raise InvalidInput({"settings": str(exc)}) from None
            integration_id = integration.id
        request = _request_of(original)
        exchange = self.ctx.client.lookup_sync(target, request, kind=original.kind,
                                               trigger=Trigger.REPLAY)
        with self.ctx.db.session() as s:
            record = record_exchange(s, exchange, integration_id=integration_id,
                                     customer_id=original.customer_id, actor=actor.username,
                                     replay_of=original.id)
            replay = stored_exchange(record)
        diff = diff_bodies(original.response.body if original.response else None,
                           replay.response.body if replay.response else None)
        return ReplayResult(original, replay, diff,
                            url_changed=original.request.url != replay.request.url)
