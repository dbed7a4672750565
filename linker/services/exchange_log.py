"""The debugger's exchange log: filtered, newest first, keyset-paginated at the database.

    log = ExchangeLogService(ctx)
    page = log.page(actor, ExchangeFilter(integration_id=3, error_kind="failed"))
    page.rows              # ExchangeRow summaries (no bodies), newest first
    next_page = log.page(actor, filters, after=page.next_cursor)
    log.get(actor, page.rows[0].id)      # the full exchange for the viewer
    log.curl(actor, exchange_id)         # Copy as cURL
    for line in log.export_jsonl(actor, filters): ...

Pages are read with ``WHERE (started_at, id) < cursor ORDER BY started_at DESC, id DESC LIMIT n``
on indexes ending in (started_at, id) (migration 0002): a page change costs the same at row 20
and at row 900,000, unlike OFFSET.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from linker.contract import RequestKind
from linker.core.permissions import Actor, Permission
from linker.curl import CurlCommand, curl_command
from linker.lookup.exchange import ErrorKind, Trigger
from linker.redaction import Redactor, basic_credential, mask_json
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, NotFound
from linker.store import exchange_log as log_store
from linker.store import integrations as integrations_store
from linker.store.exchange_log import ExchangeFilter
from linker.store.exchanges import StoredExchange, load_exchange, stored_exchange

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
EXPORT_BATCH = 500

__all__ = ["Cursor", "ExchangeFilter", "ExchangeLogService", "ExchangePage", "ExchangeRow"]


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a page ends: the (started_at, id) of its last row. ``str()`` gives a token."""

    started_at: datetime
    id: int

    def __str__(self) -> str:
        return f"{self.started_at.isoformat()}~{self.id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """The cursor of a token made by ``str()``; InvalidInput when it is not one."""
        moment, sep, number = token.strip().rpartition("~")
        try:
            if not sep:
                raise ValueError(token)
            started_at = datetime.fromisoformat(moment)
            if started_at.tzinfo is None:
                raise ValueError(token)
            return cls(started_at, int(number))
        except ValueError:
            raise InvalidInput({"cursor": f"{token!r} is not a page cursor of the exchange log; "
                                          "start again from the first page"}) from None


@dataclass(frozen=True)
class ExchangeRow:
    """One line of the log: what a table shows, without bodies or headers."""

    id: int
    started_at: datetime
    integration_id: int | None
    integration_name: str
    kind: RequestKind
    trigger: Trigger
    actor: str
    customer_id: str | None
    correlation_id: str
    status: int | None
    error_kind: ErrorKind | None
    elapsed_ms: float
    result_count: int
    replay_of: int | None

    @property
    def ok(self) -> bool:
        """True when the adaptor answered and honoured the contract."""
        return self.error_kind is None

    @property
    def cursor(self) -> Cursor:
        """The cursor of the page ending at this row."""
        return Cursor(self.started_at, self.id)


@dataclass(frozen=True)
class ExchangePage:
    """One page of the log, newest first; ``next_cursor`` is None on the last page."""

    rows: tuple[ExchangeRow, ...]
    next_cursor: Cursor | None


def _keyset(cursor: Cursor | None) -> log_store.KeysetCursor | None:
    return None if cursor is None else (cursor.started_at, cursor.id)


def _row(values: Any) -> ExchangeRow:
    (id_, started_at, integration_id, name, kind, trigger, actor, customer_id, correlation_id,
     status, error_kind, elapsed_ms, result_count, replay_of) = values
    return ExchangeRow(
        id=id_, started_at=started_at, integration_id=integration_id, integration_name=name,
        kind=RequestKind(kind), trigger=Trigger(trigger), actor=actor, customer_id=customer_id,
        correlation_id=correlation_id, status=status,
        error_kind=ErrorKind(error_kind) if error_kind else None, elapsed_ms=elapsed_ms,
        result_count=result_count, replay_of=replay_of)


def _check_filter(f: ExchangeFilter) -> None:
    problems = {}
    if f.error_kind and f.error_kind not in ("ok", "failed", *ErrorKind):
        problems["error_kind"] = (f"{f.error_kind!r} is not an error kind; use ok, failed or "
                                  f"one of {', '.join(ErrorKind)}")
    if f.trigger and f.trigger not in tuple(Trigger):
        problems["trigger"] = f"{f.trigger!r} is not a trigger; use one of {', '.join(Trigger)}"
    if f.since and f.until and f.since >= f.until:
        problems["until"] = "the end of the time range must be after its start"
    if problems:
        raise InvalidInput(problems)


class ExchangeLogService:
    """The exchange log of the debugger (developers and admins)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def page(self, actor: Actor, filters: ExchangeFilter | None = None, *,
             after: Cursor | str | None = None, limit: int = DEFAULT_PAGE_SIZE) -> ExchangePage:
        """The ``limit`` newest exchanges matching ``filters`` that come after ``after``.

        ``after`` is the ``next_cursor`` of the previous page (or its ``str()`` token). Raises
        InvalidInput for an unknown trigger or error kind, an empty time range or a bad cursor.
        """
        actor.require(Permission.READ_EXCHANGE_LOG, "read the exchange log")
        f = filters or ExchangeFilter()
        _check_filter(f)
        cursor = Cursor.parse(after) if isinstance(after, str) else after
        size = max(1, min(int(limit), MAX_PAGE_SIZE))
        with self.ctx.db.session(readonly=True) as s:
            found = [_row(values) for values in
                     log_store.row_values_before(s, f, _keyset(cursor), size + 1)]
        rows = tuple(found[:size])
        more = len(found) > size
        return ExchangePage(rows, rows[-1].cursor if more and rows else None)

    def get(self, actor: Actor, exchange_id: int) -> StoredExchange:
        """One stored exchange with request, response and violations; NotFound when pruned."""
        actor.require(Permission.READ_EXCHANGE_LOG, "read the exchange log")
        with self.ctx.db.session(readonly=True) as s:
            exchange = load_exchange(s, exchange_id)
        if exchange is None:
            raise NotFound(f"exchange {exchange_id} does not exist (it may have been pruned)")
        return exchange

    def curl(self, actor: Actor, exchange_id: int) -> CurlCommand:
        """Copy as cURL: the stored request as a command with secrets as $ENV_VARS, plus the
        ``linker lookup`` command that signs it."""
        exchange = self.get(actor, exchange_id)
        username, secret_headers = "", frozenset[str]()
        if exchange.integration_id is not None:
            with self.ctx.db.session(readonly=True) as s:
                integration = integrations_store.find(s, exchange.integration_id)
                if integration is not None:
                    username = integration.username
                    secret_headers = frozenset(str(r["name"]) for r in integration.headers
                                               if r.get("secret"))
        return curl_command(exchange.request, kind=exchange.kind, username=username,
                            secret_headers=secret_headers, integration=exchange.integration_name)

    def export_jsonl(self, actor: Actor, filters: ExchangeFilter | None = None
                     ) -> Iterator[str]:
        """The filtered log as JSON lines, newest first, read in keyset batches (never the
        whole log in memory). Stored exchanges are redacted already; every string is masked
        again with every integration's current secrets, in case one changed since."""
        actor.require(Permission.EXPORT_EXCHANGES, "export the exchange log")
        f = filters or ExchangeFilter()
        _check_filter(f)
        if f.integration_name:
            self._require_integration(f.integration_name)
        redactor = self._all_secrets()
        cursor: Cursor | None = None
        while True:
            with self.ctx.db.session(readonly=True) as s:
                batch = [stored_exchange(r) for r in
                         log_store.records_before(s, f, _keyset(cursor), EXPORT_BATCH)]
            for exchange in batch:
                yield json.dumps(mask_json(exchange.as_dict(), redactor.text), ensure_ascii=False,
                                 sort_keys=True)
            if len(batch) < EXPORT_BATCH:
                return
            cursor = Cursor(batch[-1].started_at, batch[-1].id)

    def _require_integration(self, name: str) -> None:
        with self.ctx.db.session(readonly=True) as s:
            found = integrations_store.id_named(s, name)
        if found is None:
            raise NotFound(f"no integration named {name!r}; `linker integrations list` shows them")

    def _all_secrets(self) -> Redactor:
        box = self.ctx.secrets
        secrets: list[str] = []
        with self.ctx.db.session(readonly=True) as s:
            for integration in integrations_store.all_by_name(s):
                config = integrations_store.config_of(integration, box)
                secrets += [config.password, config.signing_key]
                secrets += [h.value or "" for h in config.headers if h.secret]
                if config.username or config.password:
                    secrets.append(basic_credential(config.username, config.password))
        return Redactor(secrets)
