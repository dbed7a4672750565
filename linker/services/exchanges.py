"""The exchange log: every stored adaptor call, filtered, opened and exported (already redacted)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from linker.core.permissions import Actor, Permission
from linker.services.context import ServiceContext
from linker.services.errors import NotFound
from linker.store import exchange_log as log_store
from linker.store import integrations as integrations_store
from linker.store.exchange_log import ExchangeFilter, apply_filter
from linker.store.exchanges import StoredExchange, stored_exchange

EXPORT_BATCH = 500


class ExchangeService:
    """Read access to the exchange log, for developers, admins and support leads."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def list(
        self, actor: Actor, filters: ExchangeFilter | None = None, *, limit: int = 200,
        offset: int = 0,
    ) -> list[StoredExchange]:
        """Exchanges matching ``filters``, newest first."""
        actor.require(Permission.VIEW_EXCHANGES, "view the exchange log")
        with self.ctx.db.session() as s:
            records = log_store.records_page(s, filters or ExchangeFilter(), limit, offset)
            return [stored_exchange(r) for r in records]

    def count(self, actor: Actor, filters: ExchangeFilter | None = None) -> int:
        """How many exchanges match ``filters``."""
        actor.require(Permission.VIEW_EXCHANGES, "view the exchange log")
        with self.ctx.db.session() as s:
            return log_store.count(s, filters or ExchangeFilter())

    def get(self, actor: Actor, exchange_id: int) -> StoredExchange:
        """One exchange; NotFound when it does not exist (or was pruned)."""
        actor.require(Permission.VIEW_EXCHANGES, "view the exchange log")
        with self.ctx.db.session() as s:
            record = log_store.record_of(s, exchange_id)
            if record is None:
                raise NotFound(f"exchange {exchange_id} does not exist (it may have been pruned)")
            return stored_exchange(record)

    def export_jsonl(self, actor: Actor, filters: ExchangeFilter | None = None) -> Iterator[str]:
        """One JSON line per exchange, oldest first, read in batches (bodies already redacted)."""
        actor.require(Permission.VIEW_EXCHANGES, "export the exchange log")
        f = filters or ExchangeFilter()
        if f.integration_name:
            self._require_integration(f.integration_name)
        last_id = 0
        while True:
            with self.ctx.db.session() as s:
                batch = [stored_exchange(r) for r in
                         log_store.records_after_id(s, f, last_id, EXPORT_BATCH)]
            if not batch:
                return
            for exchange in batch:
                yield json.dumps(exchange.as_dict(), ensure_ascii=False, sort_keys=True)
            last_id = batch[-1].id

    def _require_integration(self, name: str) -> None:
        with self.ctx.db.session() as s:
            found = integrations_store.id_named(s, name)
        if found is None:
            raise NotFound(f"no integration named {name!r}; `linker integrations list` shows them")


__all__ = ["EXPORT_BATCH", "ExchangeFilter", "ExchangeService", "apply_filter"]
