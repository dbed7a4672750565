"""The lookup client against a tiny in-test ASGI app: what goes on the wire, what comes back."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from linker import signing
from linker.contract import (
    RequestKind,
    Severity,
    autolink_request,
    detailed_request,
    search_request,
)
from linker.lookup import (
    AdaptorTarget,
    ErrorKind,
    Exchange,
    InvalidTarget,
    LookupClient,
    Trigger,
    lookup_many,
    lookup_many_sync,
)
from linker.redaction import basic_credential

NOW = datetime(2019, 2, 13, 21, 40, 16, tzinfo=UTC)
RAW_ID = bytes.fromhex("bd799210f8d549609a08ccef8ee7f166")
CORRELATION_ID = "vXmSEPjVSWCaCMzvjufxZg"
URL = "http://adaptor.test/api/v2/customer/lookup"

PASSWORD = "pa55-word-secret"
SIGNING_KEY = "test-signing-key-0123456789"
API_KEY = "api-key-secret-value"
OK_BODY = {"results": [{"externalCustomerId": "42", "name": "Martha Williams",
                        "emails": [{"original": "martha@example.com"}],
                        "phones": [{"original": "+15013299800", "type": "MOBILE"}]}]}

Responder = Callable[[Request], Awaitable[Response]]


@dataclass
class Seen:
    """One request as the in-test adaptor received it."""

    method: str
    url: str
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes


@dataclass
class FakeAdaptor:
    """A Starlette app that records every request and answers with ``respond``."""

    respond: Responder
    seen: list[Seen] = field(default_factory=list)

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            self.seen.append(Seen(
                method=request.method,
                url=str(request.url),
                headers=dict(request.headers),
                raw_headers=[(k.decode(), v.decode()) for k, v in request.headers.raw],
                body=await request.body(),
            ))
            return await self.respond(request)

        return Starlette(routes=[Route("/{path:path}", endpoint, methods=["POST", "GET"])])

    def client(self) -> LookupClient:
        return LookupClient(now=lambda: NOW, new_id=lambda: RAW_ID,
                            transport=httpx.ASGITransport(app=self.app()))


def answer(body: Any = None, status: int = 200, headers: dict[str, str] | None = None,
           raw: bytes | None = None, media_type: str = "application/json") -> Responder:
    async def respond(_: Request) -> Response:
        if raw is not None:
            return Response(raw, status_code=status, headers=headers, media_type=media_type)
        return JSONResponse(OK_BODY if body is None else body, status_code=status,
                            headers=headers)

    return respond


def run(client: LookupClient, target: AdaptorTarget, request: Any = None, **kw: Any) -> Exchange:
    req = request or search_request("cust-1", {"email": "martha@example.com"})
    return asyncio.run(client.lookup(target, req, **kw))


BASE_HEADERS = {"host", "accept", "content-type", "gladly-time", "gladly-correlation-id",
                "x-b3-traceid", "user-agent", "accept-encoding", "content-length"}


def test_headers_without_credentials_are_exactly_the_contract_set() -> None:
    adaptor = FakeAdaptor(answer())
    exchange = run(adaptor.client(), AdaptorTarget(URL))
    assert exchange.ok, exchange.error
    got = adaptor.seen[0]
    assert got.method == "POST"
    assert got.url == URL
    assert set(got.headers) == BASE_HEADERS
    assert got.headers["accept"] == "application/json"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["gladly-time"] == "20190213T214016Z"
    assert got.headers["gladly-correlation-id"] == CORRELATION_ID
    assert got.headers["x-b3-traceid"] == "bd799210f8d549609a08ccef8ee7f166"
    assert got.headers["user-agent"].startswith("Linker/")
    assert exchange.correlation_id == CORRELATION_ID
    assert len(exchange.correlation_id) == 22


def test_correlation_and_trace_ids_come_from_the_same_bytes() -> None:
    raw = bytes(range(16))
    adaptor = FakeAdaptor(answer())
    client = LookupClient(now=lambda: NOW, new_id=lambda: raw,
                          transport=httpx.ASGITransport(app=adaptor.app()))
    run(client, AdaptorTarget(URL))
    headers = adaptor.seen[0].headers
    cid = headers["gladly-correlation-id"]
    assert base64.urlsafe_b64decode(cid + "==") == raw
    assert "=" not in cid and len(cid) == 22
    assert bytes.fromhex(headers["x-b3-traceid"]) == raw


@pytest.mark.parametrize(("username", "password"), [("alice", PASSWORD), ("alice", ""),
                                                    ("", PASSWORD)])
def test_basic_auth_and_www_authenticate_only_with_credentials(username: str,
                                                                password: str) -> None:
    adaptor = FakeAdaptor(answer())
    run(adaptor.client(), AdaptorTarget(URL, username=username, password=password,
                                         realm="Lookup"))
    headers = adaptor.seen[0].headers
    assert set(headers) == BASE_HEADERS | {"authorization", "www-authenticate"}
    assert headers["authorization"] == f"Basic {basic_credential(username, password)}"
    assert headers["www-authenticate"] == 'Basic realm="Lookup"'


def test_realm_defaults_to_empty_quotes() -> None:
    adaptor = FakeAdaptor(answer())
    run(adaptor.client(), AdaptorTarget(URL, username="alice", password=PASSWORD))
    assert adaptor.seen[0].headers["www-authenticate"] == 'Basic realm=""'


def test_body_is_compact_sorted_raw_utf8() -> None:
    adaptor = FakeAdaptor(answer())
    request = autolink_request("cust-1", "José 🚀", ["jose@example.com"], ["+15013299800"])
    run(adaptor.client(), AdaptorTarget(URL), request)
    body = adaptor.seen[0].body
    assert body == request.body()
    assert "José 🚀".encode() in body
    assert b"\\u" not in body
    assert b" " not in body.replace("José 🚀".encode(), b"")
    assert body.startswith(b'{"lookupLevel":"BASIC","query":{"emails":["jose@example.com"],'
                           b'"id":"cust-1","name":')
    assert int(adaptor.seen[0].headers["content-length"]) == len(body)


def test_signature_verifies_over_what_the_server_received() -> None:
    adaptor = FakeAdaptor(answer())
    target = AdaptorTarget(URL + "?b=2&a=1", signing_key=SIGNING_KEY, username="alice",
                           password=PASSWORD, headers={"X-Api-Key": API_KEY, "X-Tenant": "t1"})
    exchange = run(adaptor.client(), target, search_request(None, {"name": "José 🚀"}))
    assert exchange.ok, exchange.error
    got = adaptor.seen[0]
    signing.verify_request(SIGNING_KEY, got.method, got.url, got.headers, got.body, now=NOW)
    parsed = signing.parse_authorization(got.headers["gladly-authorization"])
    assert parsed.signed_headers == (
        "accept", "authorization", "content-type", "gladly-correlation-id", "gladly-time",
        "www-authenticate", "x-api-key", "x-b3-traceid", "x-tenant",
    )
    with pytest.raises(signing.SignatureError):
        signing.verify_request("another-key-entirely", got.method, got.url, got.headers,
                               got.body, now=NOW)


def test_signature_matches_the_documented_example() -> None:
    adaptor = FakeAdaptor(answer())
    request = detailed_request(
        "o2sg-TMTSD2rTwMuxzewbA", "abc", name="Martha Williams",
        emails=["martha.williams@gmail.com"], phones=["+15013299800"],
        custom_attributes={"favoriteDate": "2018-08-19T07:00:00.000Z",
                           "favoriteFood": "Apple Pie"},
    )
    target = AdaptorTarget("https://example.organization.com/api/v2/customer/lookup",
                           signing_key="test-apikey-1")
    prepared = adaptor.client().prepare(target, request)
    assert prepared.signature == (
        "4c633fca4914f51df04c9ec40f4545d66d653e771c6634e33eed52a242bc278c"
    )


def test_custom_headers_are_sent_and_signed() -> None:
    adaptor = FakeAdaptor(answer())
    target = AdaptorTarget(URL, signing_key=SIGNING_KEY, headers={"X-Tenant": "north"})
    run(adaptor.client(), target)
    headers = adaptor.seen[0].headers
    assert headers["x-tenant"] == "north"
    assert "x-tenant" in signing.parse_authorization(headers["gladly-authorization"]).signed_headers
    assert set(headers) == BASE_HEADERS | {"x-tenant", "gladly-authorization"}


def _echo_everything(status: int) -> Responder:
    async def respond(request: Request) -> Response:
        echoed = {"headers": dict(request.headers), "body": (await request.body()).decode(),
                  "url": str(request.url)}
        body = {"results": [{"externalCustomerId": "1", "name": json.dumps(echoed)}],
                "errors": [{"detail": json.dumps(echoed)}]}
        headers = {f"x-echo-{k}": v for k, v in request.headers.items()
                   if k not in ("content-length", "host")}
        return JSONResponse(body, status_code=status, headers=headers)

    return respond


@pytest.mark.parametrize("status", [200, 401, 500])
def test_no_secret_survives_in_any_exchange_field(status: int) -> None:
    adaptor = FakeAdaptor(_echo_everything(status))
    target = AdaptorTarget(URL, username="alice", password=PASSWORD, signing_key=SIGNING_KEY,
                           headers={"X-Api-Key": API_KEY, "X-Token": "token-secret-value"},
                           secret_headers=frozenset({"x-token"}))
    request = search_request(None, {"note": f"{PASSWORD} {SIGNING_KEY}"})
    exchange = run(adaptor.client(), target, request)
    got = adaptor.seen[0]
    signature = signing.parse_authorization(got.headers["gladly-authorization"]).signature
    dumped = json.dumps(exchange.as_dict(), ensure_ascii=False)
    for secret in (PASSWORD, SIGNING_KEY, API_KEY, "token-secret-value",
                   basic_credential("alice", PASSWORD), signature):
        assert secret not in dumped
        assert secret not in repr(exchange)
    assert "alice" not in repr(target) and PASSWORD not in repr(target)


@pytest.mark.parametrize("escaped", [False, True])
def test_a_secret_in_a_result_is_masked_plain_or_json_escaped(escaped: bool) -> None:
    """Results are masked whether or not the body takes the no-secret fast path: a secret
    written with JSON escapes only appears once decoded."""
    value = "".join(f"\\u{ord(c):04x}" for c in SIGNING_KEY) if escaped else SIGNING_KEY
    raw = ('{"results":[{"externalCustomerId":"1","name":"key ' + value + '",'
           '"emails":[{"original":"https://bob:pw@host.example"}]}]}').encode()
    exchange = run(FakeAdaptor(answer(raw=raw)).client(),
                   AdaptorTarget(URL, signing_key=SIGNING_KEY))
    assert exchange.ok, exchange.error
    assert exchange.results[0].name == "key ****"
    assert "bob:pw" not in repr(exchange.results)


def test_a_clean_body_keeps_its_results_as_sent() -> None:
    exchange = run(FakeAdaptor(answer()).client(), AdaptorTarget(URL, signing_key=SIGNING_KEY))
    assert exchange.results[0].name == "Martha Williams"
    assert exchange.results[0].emails[0].original == "martha@example.com"


@pytest.mark.parametrize("echoed", [False, True])
def test_headers_are_kept_as_sent_unless_one_holds_a_secret(echoed: bool) -> None:
    """Header values are searched at once: clean ones are stored as they came, a secret in
    any of them is masked there, and credentials are masked by name either way."""
    headers = {"x-plain": "hello world", "x-other": "Signature? no"}
    if echoed:
        headers["x-echo"] = f"key={SIGNING_KEY}"
    adaptor = FakeAdaptor(answer(headers=headers))
    exchange = run(adaptor.client(), AdaptorTarget(URL, username="alice", password=PASSWORD,
                                                   signing_key=SIGNING_KEY))
    assert exchange.response is not None
    stored = exchange.response.headers
    assert stored["x-plain"] == "hello world" and stored["x-other"] == "Signature? no"
    assert stored.get("x-echo") == ("key=****" if echoed else None)
    sent = adaptor.seen[0].headers
    recorded = {k.lower(): v for k, v in exchange.request.headers.items()}
    assert recorded["authorization"] == "Basic ****"
    assert "Signature=****" in recorded["gladly-authorization"]
    assert recorded["gladly-correlation-id"] == sent["gladly-correlation-id"]
    assert recorded["content-type"] == sent["content-type"]


def test_warnings_keep_the_exchange_ok_and_results_are_parsed() -> None:
    body = {"results": [{"externalCustomerId": 42, "name": "Martha",
                         "phones": [{"original": "+15013299800"}]}]}
    exchange = run(FakeAdaptor(answer(body)).client(), AdaptorTarget(URL))
    assert exchange.ok
    assert exchange.results[0].external_customer_id == "42"
    assert {v.severity for v in exchange.violations} == {Severity.WARNING}
    assert {v.path for v in exchange.violations} == {"results[0].externalCustomerId",
                                                    "results[0].phones[0].type"}


def test_json_with_another_content_type_is_a_warning_at_root() -> None:
    raw = json.dumps(OK_BODY).encode()
    exchange = run(FakeAdaptor(answer(raw=raw, media_type="text/html")).client(),
                   AdaptorTarget(URL))
    assert exchange.ok
    assert [(v.path, v.severity) for v in exchange.violations] == [("$", Severity.WARNING)]
    assert "content type" in exchange.violations[0].message


def test_success_exchange_fields() -> None:
    target = AdaptorTarget(URL, name="Shop")
    exchange = run(FakeAdaptor(answer()).client(), target)
    assert exchange.ok
    assert exchange.integration == "Shop"
    assert exchange.kind is RequestKind.SEARCH
    assert exchange.trigger is Trigger.SEARCH
    assert exchange.started_at == NOW
    assert exchange.elapsed_ms >= 0
    assert exchange.response is not None
    assert exchange.response.status == 200
    assert json.loads(exchange.response.body) == OK_BODY
    assert exchange.response.size == len(exchange.response.body.encode())
    assert not exchange.response.truncated
    assert exchange.request.body == search_request(
        "cust-1", {"email": "martha@example.com"}).body().decode()
    assert exchange.results[0].name == "Martha Williams"


def test_kind_and_trigger_can_be_given() -> None:
    exchange = run(FakeAdaptor(answer()).client(), AdaptorTarget(URL),
                   kind=RequestKind.AUTOLINK, trigger=Trigger.CLI)
    assert exchange.kind is RequestKind.AUTOLINK
    assert exchange.trigger is Trigger.CLI


def _never_answers() -> Responder:
    async def respond(_: Request) -> Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return respond


def _raises() -> Responder:
    async def respond(_: Request) -> Response:
        raise RuntimeError("adaptor bug")

    return respond


FAILURES: list[tuple[str, Responder, dict[str, Any], ErrorKind, str]] = [
    ("500", answer({"errors": [{"detail": "db down"}]}, status=500), {},
     ErrorKind.HTTP_STATUS, "HTTP 500"),
    ("401", answer({"errors": [{"detail": "Signature is incorrect"}]}, status=401), {},
     ErrorKind.HTTP_STATUS, "signing key"),
    ("403", answer(raw=b"forbidden", status=403, media_type="text/plain"), {},
     ErrorKind.HTTP_STATUS, "username/password"),
    ("redirect", answer(raw=b"", status=302, headers={"Location": "/v2/lookup"}), {},
     ErrorKind.REDIRECT, "http://adaptor.test/v2/lookup"),
    ("bad json", answer(raw=b'{"results": [', media_type="application/json"), {},
     ErrorKind.INVALID_JSON, "not valid JSON"),
    ("html", answer(raw=b"<!DOCTYPE html><html><body>Oops</body></html>", status=200,
                    media_type="text/html"), {}, ErrorKind.INVALID_JSON, "HTML"),
    ("empty", answer(raw=b"", status=200), {}, ErrorKind.INVALID_JSON, "empty body"),
    ("missing id", answer({"results": [{"name": "x"}]}), {}, ErrorKind.CONTRACT,
     "results[0].externalCustomerId"),
    ("no results", answer({"customers": []}), {}, ErrorKind.CONTRACT, "results"),
    ("too large", answer({"results": [], "pad": "x" * 5000}), {"max_body_bytes": 1000},
     ErrorKind.TOO_LARGE, "larger than 1000 bytes"),
    ("timeout", _never_answers(), {"timeout_s": 0.2}, ErrorKind.TIMEOUT, "within 0.2 s"),
    ("app crash", _raises(), {}, ErrorKind.UNREACHABLE, "adaptor bug"),
]


@pytest.mark.parametrize(("responder", "settings", "kind", "needle"),
                         [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_failures_end_in_the_right_kind(responder: Responder, settings: dict[str, Any],
                                        kind: ErrorKind, needle: str) -> None:
    exchange = run(FakeAdaptor(responder).client(), AdaptorTarget(URL, **settings))
    assert not exchange.ok
    assert exchange.error is not None
    assert exchange.error.kind is kind
    assert needle in exchange.error.message


def test_too_large_keeps_the_first_bytes_and_flags_truncation() -> None:
    exchange = run(FakeAdaptor(answer({"results": [], "pad": "x" * 5000})).client(),
                   AdaptorTarget(URL, max_body_bytes=1000))
    assert exchange.response is not None
    assert exchange.response.truncated
    assert len(exchange.response.body) == 1000
    assert exchange.response.size > 1000


def test_detailed_with_two_results_breaks_the_contract() -> None:
    body = {"results": [{"externalCustomerId": "1"}, {"externalCustomerId": "2"}]}
    exchange = run(FakeAdaptor(answer(body)).client(), AdaptorTarget(URL),
                   detailed_request(None, "1"))
    assert exchange.error is not None
    assert exchange.error.kind is ErrorKind.CONTRACT
    assert "exactly one result" in exchange.error.message
    assert len(exchange.results) == 2


def test_http_status_keeps_the_body() -> None:
    exchange = run(FakeAdaptor(answer({"errors": [{"detail": "db down"}]}, status=503)).client(),
                   AdaptorTarget(URL))
    assert exchange.response is not None
    assert exchange.response.status == 503
    assert "db down" in exchange.response.body


def test_lookup_sync_works_with_and_without_a_running_loop() -> None:
    adaptor = FakeAdaptor(answer())
    client = adaptor.client()
    request = search_request(None, {"email": "martha@example.com"})
    assert client.lookup_sync(AdaptorTarget(URL), request).ok

    async def inside_a_loop() -> Exchange:
        return client.lookup_sync(AdaptorTarget(URL), request)

    assert asyncio.run(inside_a_loop()).ok


def test_prepare_is_a_dry_run_with_the_exact_bytes() -> None:
    adaptor = FakeAdaptor(answer())
    target = AdaptorTarget(URL, signing_key=SIGNING_KEY)
    request = search_request(None, {"email": "a@b.co"})
    prepared = adaptor.client().prepare(target, request)
    assert prepared.body == request.body()
    assert prepared.correlation_id == CORRELATION_ID
    assert not adaptor.seen
    headers = prepared.header_pairs()
    signing.verify_request(SIGNING_KEY, "POST", URL, headers, prepared.body, now=NOW)


def _routed() -> Responder:
    async def respond(request: Request) -> Response:
        if request.url.path == "/hang":
            await asyncio.Event().wait()
        if request.url.path == "/broken":
            return JSONResponse({"errors": []}, status_code=500)
        return JSONResponse(OK_BODY)

    return respond


def test_fan_out_returns_every_exchange_in_job_order() -> None:
    adaptor = FakeAdaptor(_routed())
    client = adaptor.client()
    request = search_request(None, {"email": "martha@example.com"})
    jobs = [(AdaptorTarget("http://adaptor.test/a", name="a"), request),
            (AdaptorTarget("http://adaptor.test/hang", name="hang", timeout_s=1.0), request),
            (AdaptorTarget("http://adaptor.test/broken", name="broken"), request),
            (AdaptorTarget("http://adaptor.test/b", name="b"), request)]
    finished: list[str] = []
    exchanges = asyncio.run(lookup_many(client, jobs, trigger=Trigger.SEARCH,
                                        on_result=lambda i, e: finished.append(e.integration)))
    assert [e.integration for e in exchanges] == ["a", "hang", "broken", "b"]
    assert [e.error.kind if e.error else None for e in exchanges] == [
        None, ErrorKind.TIMEOUT, ErrorKind.HTTP_STATUS, None]
    assert finished[-1] == "hang"  # healthy systems are reported before the hang gives up
    assert sorted(finished) == ["a", "b", "broken", "hang"]
    assert lookup_many_sync(client, []) == []


def test_target_validation() -> None:
    assert AdaptorTarget(URL, timeout_s=60).timeout_s == 15.0
    for bad in (0, -1, float("nan")):
        with pytest.raises(InvalidTarget, match="timeout"):
            AdaptorTarget(URL, timeout_s=bad)
    for reserved in ("Gladly-Time", "accept", "Content-Type", "Authorization", "Host"):
        with pytest.raises(InvalidTarget, match="set by Linker"):
            AdaptorTarget(URL, headers={reserved: "x"})
    with pytest.raises(InvalidTarget, match="twice"):
        AdaptorTarget(URL, headers={"X-A": "1", "x-a": "2"})
    with pytest.raises(InvalidTarget, match="not in the adaptor URL"):
        AdaptorTarget("https://bob:secret@adaptor.test/")
    with pytest.raises(InvalidTarget, match="http"):
        AdaptorTarget("ftp://adaptor.test/")
    with pytest.raises(InvalidTarget, match="non-ASCII"):
        AdaptorTarget(URL, headers={"X-Name": "José"})
    with pytest.raises(InvalidTarget, match="realm"):
        AdaptorTarget(URL, realm='a"b')
    target = AdaptorTarget(URL, headers={"X-A": "1"}, secret_headers=frozenset({"X-A"}))
    assert hash(target) == hash(AdaptorTarget(URL, headers={"X-A": "1"},
                                              secret_headers=frozenset({"x-a"})))
    assert target.secret_header_values() == {"X-A": "1"}
