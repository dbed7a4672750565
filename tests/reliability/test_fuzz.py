"""Fuzzing with hypothesis: arbitrary answers through the lookup client, mutated signed
requests, arbitrary text in form fields and CSV cells.

Profiles: ``ci`` (default, small) and ``deep`` (``make fuzz``: HYPOTHESIS_PROFILE=deep).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response

from linker import signing
from linker.contract import RequestKind, Severity, search_request
from linker.core.csv_rows import CandidateRow, CsvFileProblem, check_file, read_rows
from linker.lookup import AdaptorTarget, LookupClient
from linker.redaction import MASK

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

URL = "http://fuzz.test/lookup"
PASSWORD = 'fu"zz\\pässword'
TARGET = AdaptorTarget(URL, username="u", password=PASSWORD, signing_key="fuzz-signing-key")
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text() | st.just(PASSWORD),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
result = st.fixed_dictionaries(
    {"externalCustomerId": st.text(max_size=10) | st.integers() | st.none()},
    optional={"name": st.text() | st.just(PASSWORD) | st.integers(),
              "emails": st.lists(st.fixed_dictionaries({"original": st.text(max_size=20)})),
              "customAttributes": st.dictionaries(st.text(max_size=8), json_values, max_size=3)},
)
payloads = st.fixed_dictionaries({"results": st.lists(result, max_size=3)}) | json_values


def _lookup(body: bytes, status: int = 200, content_type: str = "application/json") -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await Request(scope, receive).body()
        await Response(body, status_code=status, media_type=content_type)(scope, receive, send)

    client = LookupClient(transport=httpx.ASGITransport(app=app))
    return asyncio.run(client.lookup(TARGET, search_request("c1", {"email": "a@b.c"})))


def _check(exchange: Any) -> None:
    errors = [v for v in exchange.violations if v.severity is Severity.ERROR]
    if exchange.ok:
        assert not errors
    else:
        assert exchange.error.message
        if exchange.error.kind.value == "contract":
            assert errors  # the results kept are the ones validation could accept
        else:
            assert exchange.results == ()
    for profile in exchange.results:
        assert profile.external_customer_id
    assert exchange.response is not None
    for text in (exchange.response.body, json.dumps(exchange.as_dict(), ensure_ascii=False)):
        assert PASSWORD not in text and json.dumps(PASSWORD)[1:-1] not in text
        assert "\x00" not in text and "\\u0000" not in text
    for profile in exchange.results:
        dumped = json.dumps(profile.model_dump(by_alias=True, mode="json"), ensure_ascii=False)
        assert PASSWORD not in dumped


@given(body=st.binary(max_size=2048), status=st.sampled_from([200, 200, 404, 500]),
       content_type=st.sampled_from(["application/json", "text/html", "text/plain"]))
def test_arbitrary_bytes_never_raise(body: bytes, status: int, content_type: str) -> None:
    _check(_lookup(body, status, content_type))


@given(payload=payloads)
def test_arbitrary_json_gives_consistent_results_and_violations(payload: Any) -> None:
    exchange = _lookup(json.dumps(payload).encode())
    _check(exchange)
    if isinstance(payload, dict) and exchange.ok:
        assert len(exchange.results) <= len(payload.get("results", []))
    masked = json.dumps(PASSWORD) in json.dumps(payload)
    if masked:
        assert MASK in exchange.response.body


def _signed() -> tuple[str, dict[str, str], bytes]:
    client = LookupClient(now=lambda: NOW)
    prepared = client.prepare(TARGET, search_request("c1", {"email": "a@b.c"}))
    headers = dict(prepared.http_request.headers.items())
    return str(prepared.http_request.url), headers, prepared.body


@given(data=st.data())
def test_mutated_requests_never_verify(data: st.DataObject) -> None:
    url, headers, body = _signed()
    signing.verify_request("fuzz-signing-key", "POST", url, headers, body, now=NOW)
    what = data.draw(st.sampled_from(["body", "header", "url", "time"]))
    if what == "body":
        index = data.draw(st.integers(0, len(body) - 1))
        flip = data.draw(st.integers(1, 255))
        body = body[:index] + bytes([body[index] ^ flip]) + body[index + 1:]
    elif what == "header":
        name = data.draw(st.sampled_from(["gladly-correlation-id", "x-b3-traceid",
                                          "content-type", "accept"]))
        headers[name] = headers[name] + data.draw(st.text("abcXYZ019", min_size=1, max_size=4))
    elif what == "url":
        url = url + "?" + data.draw(st.text("abc", min_size=1, max_size=5)) + "=1"
    else:
        headers["gladly-time"] = "20240501T120001Z"
    with pytest.raises(signing.SignatureError):
        signing.verify_request("fuzz-signing-key", "POST", url, headers, body, now=NOW)


@given(name=st.text(max_size=40), email=st.text(max_size=40))
def test_arbitrary_csv_cells_are_read_back_or_refused_clearly(name: str, email: str) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows([["name", "email", "phone", "phone_type"], [name, email, "", ""]])
    try:
        check_file(io.StringIO(out.getvalue(), newline=""))
        rows = list(read_rows(io.StringIO(out.getvalue(), newline="")))
    except CsvFileProblem as exc:
        assert str(exc)
        return
    assert len(rows) <= 1
    for row in rows:
        if not isinstance(row, CandidateRow):
            assert row.reason
            continue
        assert row.data.name == name.strip()
        assert "\x00" not in row.data.name


@pytest.mark.parametrize("kind", list(RequestKind))
def test_profiles_are_registered(kind: RequestKind) -> None:
    assert settings.get_profile("ci").max_examples < settings.get_profile("deep").max_examples
