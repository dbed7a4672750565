"""The reference lookup adaptor as a Starlette app: it receives the contract's POSTs.

Each request goes through these steps, in order:

1. delay faults (``latency``, ``jitter``); the delay applied is reported in ``X-Adaptor-Delay-Ms``;
2. ``hang`` or a ``hang-rate`` draw (no answer until the client disconnects or the server
   stops), ``redirect`` (302);
3. Basic auth when a username or password is set, then the signature when a key is set (401);
4. ``status:CODE`` and ``error-rate`` (error status with a JSON body), ``html-error``;
5. the body: not JSON -> 400, no or unknown ``lookupLevel`` -> 422;
6. the lookup (BASIC search or DETAILED by id), then the result and body faults (a
   ``malformed-rate`` draw cuts a 200 body short like ``malformed-json``); ``slow-drip``
   streams that body one byte at a time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import random
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from linker.adaptor.datasets import Dataset, load_dataset
from linker.adaptor.faults import KNOWN_QUERY_KEYS, Fault, FaultPlan
from linker.contract import encode_json
from linker.signing import AUTHORIZATION_HEADER, SignatureError, verify_request

JSON = "application/json"
DELAY_HEADER = "X-Adaptor-Delay-Ms"
HTML_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\n"
    b"<body><h1>Internal Server Error</h1><p>The server encountered an internal error and was "
    b"unable to complete your request.</p><hr><address>nginx</address></body></html>\n"
)


class _Refusal(Exception):
    """An error answer: status plus one ``{"attr","code","detail"}`` entry."""

    def __init__(self, status: int, attr: str, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.body = {"errors": [{"attr": attr, "code": code, "detail": detail}]}


def _strings(value: Any) -> list[str]:
    """A query value read as a list of strings: a string, a number, or a list of them."""
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items
            if isinstance(v, str | int | float) and not isinstance(v, bool) and str(v).strip()]


def _basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


class LookupHandler:
    """Answers lookups against one dataset, with optional auth checks and faults."""

    def __init__(self, dataset: Dataset, *, signing_key: str | None, username: str | None,
                 password: str | None, faults: Sequence[Fault], max_skew: timedelta,
                 now: Callable[[], datetime], rng: random.Random) -> None:
        self.dataset = dataset
        self.signing_key = signing_key or None
        self.credentials = ((username or "").encode(), (password or "").encode()) if (
            username or password) else None
        self.plan = FaultPlan(faults)
        self.max_skew = max_skew
        self.now = now
        self.rng = rng

    async def handle(self, request: Request) -> Response:
        """Handle one POST: faults, auth, then the lookup."""
        body = await request.body()
        delay_ms = self.plan.delay_ms(self.rng)
        delayed = self.plan.has("latency") or self.plan.has("jitter")
        headers = {DELAY_HEADER: f"{delay_ms:.0f}"} if delayed else {}
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        if self.plan.hangs(self.rng):
            try:
                await _wait_for_disconnect(request)
            except asyncio.CancelledError:  # the server is shutting down: say so and end
                refusal = _Refusal(503, "request", "shutting_down", "the server is shutting down")
                return Response(encode_json(refusal.body), 503, media_type=JSON)
            return Response(status_code=499)  # the client is gone; nobody reads this
        if self.plan.has("redirect"):
            return Response(encode_json({"message": "moved to /moved"}), 302, media_type=JSON,
                            headers={**headers, "Location": "/moved"})
        try:
            self._authenticate(request, body)
            status = self.plan.forced_status(self.rng)
            if status is not None:
                raise _Refusal(status, "request", "server_error",
                               f"{_phrase(status)} (injected fault)")
            if self.plan.has("html-error"):
                return Response(HTML_ERROR_PAGE, 200, media_type="text/html", headers=headers)
            payload = {"results": self._lookup(_parse(body))}
        except _Refusal as refusal:
            return Response(encode_json(refusal.body), refusal.status, media_type=JSON,
                            headers=headers)
        encoded = self.plan.encode(payload, self.plan.malformed(self.rng))
        interval = self.plan.drip_interval_s()
        if interval is not None:
            return StreamingResponse(_drip(encoded, interval), 200,
                                     media_type=self.plan.media_type(), headers=headers)
        return Response(encoded, 200, media_type=self.plan.media_type(), headers=headers)

    def _authenticate(self, request: Request, body: bytes) -> None:
        if self.credentials is not None:
            given = _basic_credentials(request.headers.get("authorization")) or (b"", b"")
            user_ok = hmac.compare_digest(given[0], self.credentials[0])
            password_ok = hmac.compare_digest(given[1], self.credentials[1])
            if not (user_ok and password_ok):
                raise _Refusal(401, "Authorization", "invalid",
                               "Basic credentials are missing or wrong")
        if self.signing_key is not None:
            try:
                verify_request(self.signing_key, request.method, str(request.url),
                               request.headers, body, now=self.now(), max_skew=self.max_skew)
            except SignatureError as err:
                raise _Refusal(401, AUTHORIZATION_HEADER, err.code, err.detail) from None

    def _lookup(self, envelope: dict[str, Any]) -> list[dict[str, Any]]:
        query = envelope.get("query")
        if query is None:
            query = {}
        if not isinstance(query, dict):
            raise _Refusal(422, "query", "invalid", "query must be a JSON object")
        unknown = sorted(set(query) - KNOWN_QUERY_KEYS)
        if self.plan.has("reject-unknown-keys") and unknown:
            raise _Refusal(422, f"query.{unknown[0]}", "unknown", "unknown query key (injected "
                           "fault)")
        if envelope["lookupLevel"] == "DETAILED":
            record = self.dataset.get(_external_id(query))
            results = [] if record is None else [record.detailed()]
        else:
            records = self.dataset.search(
                emails=_strings(query.get("email")) + _strings(query.get("emails")),
                phones=_strings(query.get("phone")) + _strings(query.get("phones")),
                order_numbers=_strings(query.get("orderNumber")),
                name=query["name"] if isinstance(query.get("name"), str) else None,
            )
            if not records and self.plan.has("match-anyone"):
                records = self.dataset.records[:1]
            results = [r.basic() for r in records]
        return self.plan.transform(results, self.dataset.name)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _parse(body: bytes) -> dict[str, Any]:
    try:
        envelope = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Refusal(400, "body", "invalid", f"body is not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise _Refusal(400, "body", "invalid", "body must be a JSON object")
    level = envelope.get("lookupLevel")
    if level is None:
        raise _Refusal(422, "lookupLevel", "missing", "lookupLevel is required")
    if level not in ("BASIC", "DETAILED"):
        raise _Refusal(422, "lookupLevel", "invalid",
                       f"lookupLevel must be BASIC or DETAILED, got {level!r}")
    return envelope


def _external_id(query: dict[str, Any]) -> str:
    value = query.get("externalCustomerId")
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if value is not None and not isinstance(value, str):
        raise _Refusal(422, "externalCustomerId", "invalid", "externalCustomerId must be a string")
    if not value or not value.strip():
        raise _Refusal(422, "externalCustomerId", "missing",
                       "externalCustomerId is required for a DETAILED lookup")
    return value


async def _drip(body: bytes, interval_s: float) -> AsyncIterator[bytes]:
    """``body`` one byte at a time, ``interval_s`` apart (the slow-drip fault)."""
    for index in range(len(body)):
        await asyncio.sleep(interval_s)
        yield body[index:index + 1]


async def _wait_for_disconnect(request: Request) -> None:
    """Wait until the client disconnects; server shutdown ends it by cancellation."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
        if not message.get("more_body", False) and not message.get("body"):
            await asyncio.Event().wait()  # a server that never reports a disconnect


def create_app(
    dataset: str | Dataset = "shop",
    *,
    signing_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    faults: Sequence[Fault] = (),
    max_skew: timedelta = timedelta(minutes=5),
    now: Callable[[], datetime] | None = None,
    rng: random.Random | None = None,
) -> Starlette:
    """The adaptor app for a dataset (a name for ``load_dataset`` or a Dataset).

    With ``signing_key`` every request must carry a valid, fresh Gladly-Authorization
    signature (checked against ``now()``, within ``max_skew``); with ``username`` or
    ``password`` a matching Basic header is required. ``faults`` switch on fault profiles;
    ``rng`` drives jitter and error-rate. POST works on any path.
    """
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    handler = LookupHandler(
        data, signing_key=signing_key, username=username, password=password, faults=faults,
        max_skew=max_skew, now=now or (lambda: datetime.now(UTC)), rng=rng or random.Random(),
    )
    routes = [Route("/", handler.handle, methods=["POST"]),
              Route("/{path:path}", handler.handle, methods=["POST"])]
    return Starlette(routes=routes)
