"""The adaptor client: build, sign, send, time, cap, parse and validate one lookup.

``LookupClient.lookup`` never raises for adaptor problems: every outcome, success or failure,
comes back as an ``Exchange`` whose request and response have passed through the target's
Redactor.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import certifi
import httpx

from linker import safejson, signing
from linker.contract import (
    CustomerProfile,
    LookupRequest,
    RequestKind,
    Violation,
    request_kind,
    validate_response,
)
from linker.lookup import errors
from linker.lookup.aiotransport import AiohttpTransport
from linker.lookup.exchange import (
    Exchange,
    ExchangeError,
    RecordedRequest,
    RecordedResponse,
    Trigger,
)
from linker.lookup.httpclient import LookupHttpClient
from linker.lookup.netguard import NetworkPolicy
from linker.lookup.ratelimit import LocalGate, RequestGate
from linker.lookup.runner import run_sync
from linker.lookup.target import AdaptorTarget
from linker.redaction import MASK, Redactor, basic_credential
from linker.safetext import without_nul

WIRE_TRACE_LOGGER = "httpcore"
logging.getLogger(WIRE_TRACE_LOGGER).setLevel(logging.INFO)
"""httpcore's DEBUG wire traces print response headers verbatim, before any redaction (an
adaptor that echoes a credential in a header would put it in the log): Linker keeps that
logger at INFO, whatever the root level, for any httpcore transport passed in (lookups go
over aiohttp, which logs no headers). httpx's own INFO line names only method, URL and
status."""

USER_AGENT = "Linker/0.1"
# What Gladly sends (Go's default); httpx decodes gzip bodies before they are counted.
ACCEPT_ENCODING = "gzip"
METHOD = "POST"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client: building one costs ~20 ms each time."""
    return ssl.create_default_context(cafile=certifi.where())


@functools.lru_cache(maxsize=1024)
def _parsed_url(url: str) -> httpx.URL:
    """An adaptor URL parsed once (httpx parses a string URL in Python on every request)."""
    return httpx.URL(url)


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> dict[str, float | None]:
    """httpx's timeout extension for ``seconds`` (a fresh copy is not needed: it is only read)."""
    return httpx.Timeout(seconds).as_dict()


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


_ID_SIZE = 16
_ID_BLOCK = 256
_spare_ids: list[bytes] = []
os.register_at_fork(after_in_child=_spare_ids.clear)  # a child never reuses its parent's ids


def random_id() -> bytes:
    """16 random bytes (the default correlation id source), from ``os.urandom`` in blocks.

    One system call per 256 ids instead of one each; ``list.pop`` is atomic, so threads never
    share an id, and a forked child starts with an empty pool.
    """
    try:
        return _spare_ids.pop()
    except IndexError:
        block = os.urandom(_ID_SIZE * _ID_BLOCK)
        _spare_ids.extend(block[i:i + _ID_SIZE] for i in range(_ID_SIZE, len(block), _ID_SIZE))
        return block[:_ID_SIZE]


def correlation_id(raw: bytes) -> str:
    """Gladly-Correlation-Id of an id: base64url without padding (22 chars for 16 bytes)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def trace_id(raw: bytes) -> str:
    """X-B3-Traceid of an id: lower-case hex of the same bytes."""
    return raw.hex()


class _Masker:
    """The target's Redactor plus values only known per request (the signature).

    Everything it returns is also free of NUL characters (replaced by U+FFFD), which
    PostgreSQL cannot store.
    """

    def __init__(self, base: Redactor, extra: list[str]) -> None:
        self._base = base
        self._extra = [value for value in extra if value]

    def text(self, value: str) -> str:
        for secret in self._extra:
            value = value.replace(secret, MASK)
        return without_nul(self._base.text(value))

    def finds(self, value: str) -> bool:
        """True when ``text`` would change ``value``."""
        return ("\x00" in value or any(secret in value for secret in self._extra)
                or self._base.finds_secret(value))

    def json(self, payload: Any) -> tuple[Any, bool]:
        """A decoded JSON value with every string (keys too) masked, and whether any changed.

        All strings are searched at once; only when something matches is a masked copy built.
        """
        if not self.finds("\n".join(safejson.strings(payload))):
            return payload, False
        return safejson.map_strings(payload, self.text), True

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers as they may be stored and shown. The values of headers not masked by
        name are searched at once; when nothing is found they are kept as they are."""
        secret = self._base.is_secret_header
        if self.finds("\n".join(v for n, v in headers.items() if not secret(n))):
            return {name: self._base.header_value(name, self.text(value))
                    for name, value in headers.items()}
        return {name: self._base.header_value(name, self.text(value)) if secret(name) else value
                for name, value in headers.items()}


@dataclass(frozen=True)
class PreparedLookup:
    """A signed request ready to send, exactly as it goes on the wire, and its identity."""

    http_request: httpx.Request
    correlation_id: str
    started_at: datetime
    signature: str = ""

    @property
    def body(self) -> bytes:
        """The request body bytes (the ones hashed for the signature)."""
        return self.http_request.content

    def header_pairs(self) -> dict[str, str]:
        """Every header sent, names as written (Host and Content-Length included)."""
        return {k.decode("latin-1"): v.decode("latin-1")
                for k, v in self.http_request.headers.raw}


@dataclass
class _Received:
    """What has arrived so far; filled while reading, so a timeout keeps the partial answer."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    received: int = 0
    truncated: bool = False


def _contract_headers(target: AdaptorTarget, started_at: datetime, raw_id: bytes
                      ) -> dict[str, str]:
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        signing.TIME_HEADER: signing.format_time(started_at),
        "Gladly-Correlation-Id": correlation_id(raw_id),
        "X-B3-Traceid": trace_id(raw_id),
    }
    if target.has_basic_auth:
        headers["Authorization"] = f"Basic {basic_credential(target.username, target.password)}"
        headers["WWW-Authenticate"] = f'Basic realm="{target.realm}"'
    headers.update(target.headers)
    headers["User-Agent"] = USER_AGENT
    headers["Accept-Encoding"] = ACCEPT_ENCODING
    return headers


def _is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


@dataclass
class _Parsed:
    """The response body decoded as JSON (``problem`` says why not) and masked."""

    payload: Any = None
    problem: str | None = None
    too_deep: bool = False
    masked_text: str | None = None


def _parse(received: _Received, masker: _Masker) -> _Parsed:
    """Decode the body once (depth-capped); mask the decoded strings, re-serialising the body
    when a secret or NUL was found in them (escaped forms included)."""
    if received.status is None or received.truncated:
        return _Parsed(problem="no complete body")
    try:
        payload = safejson.loads(bytes(received.body))
    except safejson.JsonTooDeep as exc:
        return _Parsed(problem=str(exc), too_deep=True)
    except ValueError as exc:
        return _Parsed(problem=str(exc))
    masked, changed = masker.json(payload)
    text = json.dumps(masked, ensure_ascii=False) if changed else None
    return _Parsed(payload=masked, masked_text=text)


class LookupClient:
    """Calls adaptors. Clock, ids and transport are injectable so tests are deterministic.

    ``transport`` (e.g. ``httpx.ASGITransport(app)``) replaces the network for every client
    this object creates; a client passed to ``lookup`` is used as it is. Otherwise every
    connection passes ``network`` (default: ``LINKER_ALLOW_NETWORKS`` from the environment),
    which refuses non-public addresses after resolving the host.

    ``gate`` enforces the targets' rate caps (``AdaptorTarget.rate_cap``); the default
    ``LocalGate`` holds them within this process, ``linker.store.ratelimit.DatabaseGate``
    across every process on one PostgreSQL database.
    """

    def __init__(
        self,
        now: Callable[[], datetime] = utc_now,
        new_id: Callable[[], bytes] = random_id,
        transport: httpx.AsyncBaseTransport | None = None,
        network: NetworkPolicy | None = None,
        gate: RequestGate | None = None,
    ) -> None:
        self.gate: RequestGate = gate if gate is not None else LocalGate()
        self._now = now
        self._new_id = new_id
        self._transport = transport
        self._network = network if network is not None else NetworkPolicy.from_env()

    def http_client(self) -> httpx.AsyncClient:
        """A new AsyncClient for lookups: no redirects, no proxy or .netrc from the environment.

        The wire is aiohttp's (``AiohttpTransport``), every connection checked by ``network``;
        connections are not limited in number, so a fan-out never queues behind the pool.
        Requests go straight to the transport (``LookupHttpClient``: no cookie jar, auth flow
        or redirect loop).
        """
        transport = self._transport or AiohttpTransport(self._network, _tls_context())
        return LookupHttpClient(transport)

    def prepare(self, target: AdaptorTarget, request: LookupRequest) -> PreparedLookup:
        """Build and sign the HTTP request for a lookup without sending it (dry runs).

        The signature covers every header of the built request except transport ones, with
        the exact values and body bytes that are sent.
        """
        started_at = self._now()
        raw_id = self._new_id()
        headers = _contract_headers(target, started_at, raw_id)
        body = request.body()
        url = _parsed_url(target.url)
        # What httpx would append itself, written here so the signature is computed over the
        # headers as built and the request is built once (Host, unsigned, is httpx's).
        headers["Content-Length"] = str(len(body))
        signature = ""
        if target.signing_key:
            value, signature = signing.signed_authorization(
                target.signing_key, METHOD, str(url), headers, body)
            headers[signing.AUTHORIZATION_HEADER] = value
        http_request = httpx.Request(METHOD, url, headers=headers, content=body)
        http_request.extensions["timeout"] = _timeout(target.timeout_s)
        return PreparedLookup(http_request, correlation_id(raw_id), started_at, signature)

    async def lookup(
        self,
        target: AdaptorTarget,
        request: LookupRequest,
        *,
        kind: RequestKind | None = None,
        trigger: Trigger | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> Exchange:
        """Send one lookup and return its Exchange; never raises for adaptor problems.

        The whole call (connect, send, read) is bounded by ``target.timeout_s``; before it,
        a target with a rate cap waits at the gate (not counted in the timeout or in
        ``elapsed_ms``). ``kind`` defaults to the kind the request looks like, ``trigger`` to
        the one of that kind. A gate that cannot reach its database raises.
        """
        cap = target.rate_cap
        if cap is None or not cap.limited:
            return await self._lookup_now(target, request, kind, trigger, client)
        async with self.gate.admit(cap, target.timeout_s):
            return await self._lookup_now(target, request, kind, trigger, client)

    async def _lookup_now(self, target: AdaptorTarget, request: LookupRequest,
                          kind: RequestKind | None, trigger: Trigger | None,
                          client: httpx.AsyncClient | None) -> Exchange:
        kind = kind or request_kind(request)
        trigger = trigger or Trigger(kind.value)
        prepared = self.prepare(target, request)
        received = _Received()
        error: ExchangeError | None = None
        deadline = asyncio.timeout(target.timeout_s)
        start = time.perf_counter()
        try:
            async with deadline:
                if client is None:
                    async with self.http_client() as own:
                        await _exchange(own, prepared, target, received)
                else:
                    await _exchange(client, prepared, target, received)
        except Exception as exc:  # every failure becomes the Exchange's error
            error = errors.exception_error(exc, target.url, target.timeout_s, received.status)
        if error is None and deadline.expired():
            # An in-process app may swallow the cancellation and answer late: still a timeout.
            error = errors.timeout_error(target.timeout_s)
        elapsed_ms = (time.perf_counter() - start) * 1000.0
        masker = _Masker(target.redactor(), [prepared.signature])
        violations: list[Violation] = []
        results: tuple[CustomerProfile, ...] = ()
        parsed = _Parsed(problem="not read")
        try:
            parsed = _parse(received, masker)
            if error is None:
                error, violations, results = _judge(received, target, kind, parsed)
        except Exception as exc:  # a hostile answer must not raise out of a lookup
            error, violations, results = errors.unexpected_error(exc), [], ()
        return Exchange(
            kind=kind,
            trigger=trigger,
            correlation_id=prepared.correlation_id,
            started_at=prepared.started_at,
            elapsed_ms=elapsed_ms,
            request=_recorded_request(prepared, masker),
            response=_recorded_response(received, masker, parsed),
            error=ExchangeError(error.kind, masker.text(error.message)) if error else None,
            violations=tuple(Violation(v.path, masker.text(v.message), v.severity)
                             for v in violations),
            results=results,
            integration=target.name,
            meta={"timeout_s": target.timeout_s, "max_body_bytes": target.max_body_bytes},
        )

    def lookup_sync(
        self,
        target: AdaptorTarget,
        request: LookupRequest,
        *,
        kind: RequestKind | None = None,
        trigger: Trigger | None = None,
    ) -> Exchange:
        """``lookup`` from synchronous code (Streamlit's script thread, the CLI)."""
        return run_sync(lambda: self.lookup(target, request, kind=kind, trigger=trigger))


async def _exchange(http: httpx.AsyncClient, prepared: PreparedLookup, target: AdaptorTarget,
                    received: _Received) -> None:
    """Send the request and read at most ``max_body_bytes`` of the answer into ``received``."""
    response = await http.send(prepared.http_request, stream=True, follow_redirects=False)
    try:
        received.status = response.status_code
        received.headers = dict(response.headers.items())
        limit = target.max_body_bytes
        async for chunk in response.aiter_bytes():
            received.received += len(chunk)
            room = limit - len(received.body)
            if len(chunk) > room:
                received.body += chunk[:room]
                received.truncated = True
                break
            received.body += chunk
    finally:
        await response.aclose()


def _judge(received: _Received, target: AdaptorTarget, kind: RequestKind, parsed: _Parsed
           ) -> tuple[ExchangeError | None, list[Violation], tuple[CustomerProfile, ...]]:
    """Status, size, JSON and contract checks of a complete answer, in that order.

    Results are read from the payload with every string masked, so an adaptor echoing a
    secret back cannot smuggle it into a result.
    """
    status = received.status or 0
    body = bytes(received.body)
    if 300 <= status < 400:
        return errors.redirect_error(status, _location(received, target.url)), [], ()
    if not 200 <= status < 300:
        return errors.status_error(status, body), [], ()
    if received.truncated:
        return errors.too_large_error(target.max_body_bytes), [], ()
    content_type = received.headers.get("content-type", "")
    if parsed.too_deep:
        return errors.too_deep_error(safejson.MAX_DEPTH), [], ()
    if parsed.problem is not None:
        return errors.invalid_json_error(body, content_type, parsed.problem), [], ()
    violations: list[Violation] = []
    if not _is_json_type(content_type):
        violations.append(errors.content_type_warning(content_type))
    outcome = validate_response(parsed.payload, kind)
    violations.extend(outcome.violations)
    error = None if outcome.ok else errors.contract_error(violations)
    return error, violations, tuple(outcome.results)


def _location(received: _Received, url: str) -> str | None:
    location = received.headers.get("location")
    if not location:
        return None
    try:
        return str(httpx.URL(url).join(location))
    except httpx.InvalidURL:
        return location


def _recorded_request(prepared: PreparedLookup, masker: _Masker) -> RecordedRequest:
    request = prepared.http_request
    return RecordedRequest(
        method=request.method,
        url=masker.text(str(request.url)),
        headers=masker.headers(prepared.header_pairs()),
        body=masker.text(prepared.body.decode("utf-8", errors="replace")),
    )


def _recorded_response(received: _Received, masker: _Masker, parsed: _Parsed
                       ) -> RecordedResponse | None:
    if received.status is None:
        return None
    size = received.received
    declared = received.headers.get("content-length", "")
    if received.truncated and declared.isdigit():
        size = max(size, int(declared))
    return RecordedResponse(
        status=received.status,
        headers=masker.headers(received.headers),
        body=masker.text(parsed.masked_text if parsed.masked_text is not None
                         else bytes(received.body).decode("utf-8", errors="replace")),
        size=size,
        truncated=received.truncated,
    )
