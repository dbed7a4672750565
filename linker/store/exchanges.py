"""Storing adaptor exchanges, and reading them back as plain values for display and replay.

Exchanges arrive already redacted by the lookup client; this module stores them as they are,
except that a body larger than 256 KiB is cut to that size and the record flagged.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from linker.contract import RequestKind, Severity, Violation
from linker.lookup.exchange import (
    ErrorKind,
    Exchange,
    ExchangeError,
    RecordedRequest,
    RecordedResponse,
    Trigger,
    call_fields,
)
from linker.store.bulk import bulk_insert
from linker.store.models import ExchangeRecord, table_of

MAX_STORED_BODY_BYTES = 256 * 1024


def truncate_body(body: str, limit: int = MAX_STORED_BODY_BYTES) -> tuple[str, bool]:
    """``body`` cut to at most ``limit`` UTF-8 bytes (never mid-character), and whether it was."""
    encoded = body.encode("utf-8")
    if len(encoded) <= limit:
        return body, False
    return encoded[:limit].decode("utf-8", errors="ignore"), True


def record_exchange(
    session: Session,
    exchange: Exchange,
    *,
    integration_id: int | None,
    customer_id: str | None,
    actor: str,
    replay_of: int | None = None,
) -> ExchangeRecord:
    """Add ``exchange`` to the session (flushed, so ``.id`` is set) and return its record.

    Bodies over 256 KiB are stored truncated with ``body_truncated=True``; the flag is also set
    when the client already cut the response at its read cap.
    """
    record = ExchangeRecord(**exchange_row(exchange, integration_id=integration_id,
                                           customer_id=customer_id, actor=actor,
                                           replay_of=replay_of))
    session.add(record)
    session.flush()
    return record


def insert_exchanges(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Store many ``exchange_row`` rows in one statement (``bulk_insert``); their ids, in order.

    For hot paths (the backfill): no ORM object is built.
    """
    if not rows:
        return []
    return bulk_insert(session, table_of(ExchangeRecord), rows, ids=True)


def exchange_row(
    exchange: Exchange,
    *,
    integration_id: int | None,
    customer_id: str | None,
    actor: str,
    replay_of: int | None = None,
) -> dict[str, Any]:
    """The ``exchanges`` row of ``exchange`` as column values (bodies cut as ``record_exchange``
    says)."""
    request_body, request_cut = truncate_body(exchange.request.body)
    response = exchange.response
    response_body, response_cut = truncate_body(response.body) if response else (None, False)
    return dict(
        integration_id=integration_id,
        integration_name=exchange.integration,
        customer_id=customer_id,
        actor=actor,
        kind=exchange.kind.value,
        trigger=exchange.trigger.value,
        correlation_id=exchange.correlation_id,
        started_at=exchange.started_at,
        elapsed_ms=exchange.elapsed_ms,
        method=exchange.request.method,
        url=exchange.request.url,
        request_headers=dict(exchange.request.headers),
        request_body=request_body,
        response_status=response.status if response else None,
        response_headers=dict(response.headers) if response else None,
        response_body=response_body,
        response_size=response.size if response else None,
        body_truncated=request_cut or response_cut or bool(response and response.truncated),
        error_kind=exchange.error.kind.value if exchange.error else None,
        error_message=exchange.error.message if exchange.error else None,
        violations=[violation.as_dict() for violation in exchange.violations],
        result_count=len(exchange.results),
        replay_of=replay_of,
    )


@dataclass(frozen=True)
class StoredExchange:
    """A stored exchange as a plain value (safe to cache, pickle and show)."""

    id: int
    integration_id: int | None
    integration_name: str
    customer_id: str | None
    actor: str
    kind: RequestKind
    trigger: Trigger
    correlation_id: str
    started_at: datetime
    elapsed_ms: float
    request: RecordedRequest
    response: RecordedResponse | None
    error: ExchangeError | None
    violations: tuple[Violation, ...]
    result_count: int
    body_truncated: bool
    replay_of: int | None

    @property
    def ok(self) -> bool:
        """True when the adaptor answered and honoured the contract."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output (e.g. ``linker exchanges export``)."""
        return {
            "id": self.id,
            "integration_id": self.integration_id,
            "integration": self.integration_name,
            "customer_id": self.customer_id,
            "actor": self.actor,
            **call_fields(self),
            "result_count": self.result_count,
            "body_truncated": self.body_truncated,
            "replay_of": self.replay_of,
        }


def stored_exchange(record: ExchangeRecord) -> StoredExchange:
    """The display value of a stored exchange record."""
    response = None
    if record.response_status is not None:
        response = RecordedResponse(
            status=record.response_status,
            headers=dict(record.response_headers or {}),
            body=record.response_body or "",
            size=record.response_size or 0,
            truncated=record.body_truncated,
        )
    error = None
    if record.error_kind is not None:
        error = ExchangeError(kind=ErrorKind(record.error_kind),
                              message=record.error_message or "")
    return StoredExchange(
        id=record.id,
        integration_id=record.integration_id,
        integration_name=record.integration_name,
        customer_id=record.customer_id,
        actor=record.actor,
        kind=RequestKind(record.kind),
        trigger=Trigger(record.trigger),
        correlation_id=record.correlation_id,
        started_at=record.started_at,
        elapsed_ms=record.elapsed_ms,
        request=RecordedRequest(method=record.method, url=record.url,
                                headers=dict(record.request_headers), body=record.request_body),
        response=response,
        error=error,
        violations=tuple(_violation(row) for row in record.violations),
        result_count=record.result_count,
        body_truncated=record.body_truncated,
        replay_of=record.replay_of,
    )


def load_exchange(session: Session, exchange_id: int) -> StoredExchange | None:
    """The stored exchange with this id, or None."""
    record = session.get(ExchangeRecord, exchange_id)
    return stored_exchange(record) if record is not None else None


def _violation(row: dict[str, Any]) -> Violation:
    severity = row.get("severity")
    return Violation(path=str(row.get("path", "")), message=str(row.get("message", "")),
                     severity=Severity(severity) if severity else Severity.ERROR)


def pair_exchanges(session: Session, customer_id: str, integration_id: int, limit: int
                   ) -> list[ExchangeRecord]:
    """The newest ``limit`` exchanges of one (profile, integration) pair, newest first."""
    return list(session.scalars(
        select(ExchangeRecord)
        .where(ExchangeRecord.customer_id == customer_id,
               ExchangeRecord.integration_id == integration_id)
        .order_by(ExchangeRecord.started_at.desc(), ExchangeRecord.id.desc())
        .limit(limit)))


def records_by_id(session: Session, ids: Collection[int]) -> dict[int, ExchangeRecord]:
    """The exchange records with these ids, by id (pruned ones are left out)."""
    if not ids:
        return {}
    return {e.id: e for e in session.scalars(
        select(ExchangeRecord).where(ExchangeRecord.id.in_(list(ids))))}
