"""The exchange log: every stored adaptor call, filtered, opened and exported (already redacted)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from linker.core.permissions import Actor, Permission
from linker.services.context import ServiceContext
from linker.services.errors import NotFound
from linker.store import integrations as integrations_store
from linker.store.exchanges import StoredExchange, stored_exchange
from linker.store.models import ExchangeRecord

EXPORT_BATCH = 500


@dataclass(frozen=True)
class ExchangeFilter:
    """Which exchanges to show; every field is optional."""

    integration_id: int | None = None
    integration_name: str | None = None
    trigger: str | None = None
    kind: str | None = None
    error_kind: str | None = None
    """An ErrorKind value, ``"ok"`` for successes, or ``"failed"`` for any failure."""
    status: int | None = None
    customer_id: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def apply_filter(query: Select[Any], f: ExchangeFilter) -> Select[Any]:
    """``query`` restricted to the exchanges ``f`` selects."""
    conditions = []
    if f.integration_id is not None:
        conditions.append(ExchangeRecord.integration_id == f.integration_id)
    if f.integration_name:
        conditions.append(func.lower(ExchangeRecord.integration_name) == f.integration_name.lower())
    if f.trigger:
        conditions.append(ExchangeRecord.trigger == f.trigger)
    if f.kind:
        conditions.append(ExchangeRecord.kind == f.kind)
    if f.error_kind == "ok":
        conditions.append(ExchangeRecord.error_kind.is_(None))
    elif f.error_kind == "failed":
        conditions.append(ExchangeRecord.error_kind.is_not(None))
    elif f.error_kind:
        conditions.append(ExchangeRecord.error_kind == f.error_kind)
    if f.status is not None:
        conditions.append(ExchangeRecord.response_status == f.status)
    if f.customer_id:
        conditions.append(ExchangeRecord.customer_id == f.customer_id)
    if f.correlation_id:
        conditions.append(ExchangeRecord.correlation_id == f.correlation_id.strip())
    if f.since:
        conditions.append(ExchangeRecord.started_at >= f.since)
    if f.until:
        conditions.append(ExchangeRecord.started_at < f.until)
    return query.where(*conditions)


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
        query = apply_filter(select(ExchangeRecord), filters or ExchangeFilter())
        with self.ctx.db.session() as s:
            records = s.scalars(
                query.order_by(ExchangeRecord.id.desc()).limit(limit).offset(offset)
            ).all()
            return [stored_exchange(r) for r in records]

    def count(self, actor: Actor, filters: ExchangeFilter | None = None) -> int:
        """How many exchanges match ``filters``."""
        actor.require(Permission.VIEW_EXCHANGES, "view the exchange log")
        query = apply_filter(select(ExchangeRecord), filters or ExchangeFilter())
        with self.ctx.db.session() as s:
            return s.scalar(select(func.count()).select_from(query.subquery())) or 0

    def get(self, actor: Actor, exchange_id: int) -> StoredExchange:
        """One exchange; NotFound when it does not exist (or was pruned)."""
        actor.require(Permission.VIEW_EXCHANGES, "view the exchange log")
        with self.ctx.db.session() as s:
            record = s.get(ExchangeRecord, exchange_id)
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
            query = apply_filter(select(ExchangeRecord), f).where(ExchangeRecord.id > last_id)
            with self.ctx.db.session() as s:
                batch = [stored_exchange(r) for r in s.scalars(
                    query.order_by(ExchangeRecord.id).limit(EXPORT_BATCH)).all()]
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
