"""The Exchange value: one request to an adaptor and what came back, or how it failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from linker.contract import CustomerProfile, RequestKind, Violation


class ErrorKind(StrEnum):
    """Why an exchange failed."""

    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    INVALID_JSON = "invalid_json"
    CONTRACT = "contract"
    TOO_LARGE = "too_large"
    REDIRECT = "redirect"


class Trigger(StrEnum):
    """What caused an exchange."""

    AUTOLINK = "autolink"
    SEARCH = "search"
    DETAILED = "detailed"
    TEST = "test"
    CONFORMANCE = "conformance"
    REPLAY = "replay"
    CLI = "cli"
    BACKFILL = "backfill"
    DEBUGGER = "debugger"


@dataclass(frozen=True)
class ExchangeError:
    """A failure a person can act on: its kind and a message saying what to do."""

    kind: ErrorKind
    message: str

    def as_dict(self) -> dict[str, str]:
        """Plain dict for JSON output."""
        return {"kind": self.kind.value, "message": self.message}


@dataclass(frozen=True)
class RecordedRequest:
    """The request as sent, secrets masked."""

    method: str
    url: str
    headers: dict[str, str]
    body: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"method": self.method, "url": self.url, "headers": self.headers,
                "body": self.body}


@dataclass(frozen=True)
class RecordedResponse:
    """The response as received (body possibly cut at the size cap), secrets masked."""

    status: int
    headers: dict[str, str]
    body: str
    size: int
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"status": self.status, "headers": self.headers, "body": self.body,
                "size": self.size, "truncated": self.truncated}


@dataclass(frozen=True)
class Exchange:
    """One call to an adaptor, success or failure, safe to store and show."""

    kind: RequestKind
    trigger: Trigger
    correlation_id: str
    started_at: datetime
    elapsed_ms: float
    request: RecordedRequest
    response: RecordedResponse | None
    error: ExchangeError | None = None
    violations: tuple[Violation, ...] = ()
    results: tuple[CustomerProfile, ...] = ()
    integration: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the adaptor answered and honoured the contract."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output (the CLI's ``--json``)."""
        return {
            "integration": self.integration,
            **call_fields(self),
            "results": [r.model_dump(by_alias=True, mode="json") for r in self.results],
        }


class Call(Protocol):
    """What every exchange value has, live (Exchange) or stored (StoredExchange)."""

    @property
    def kind(self) -> RequestKind: ...
    @property
    def trigger(self) -> Trigger: ...
    @property
    def correlation_id(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def elapsed_ms(self) -> float: ...
    @property
    def request(self) -> RecordedRequest: ...
    @property
    def response(self) -> RecordedResponse | None: ...
    @property
    def error(self) -> ExchangeError | None: ...
    @property
    def violations(self) -> tuple[Violation, ...]: ...


def call_fields(call: Call) -> dict[str, Any]:
    """The fields every exchange has, as JSON-ready values (shared by both ``as_dict``)."""
    return {
        "kind": call.kind.value,
        "trigger": call.trigger.value,
        "correlation_id": call.correlation_id,
        "started_at": call.started_at.isoformat(),
        "elapsed_ms": round(call.elapsed_ms, 1),
        "request": call.request.as_dict(),
        "response": call.response.as_dict() if call.response else None,
        "error": call.error.as_dict() if call.error else None,
        "violations": [v.as_dict() for v in call.violations],
    }
