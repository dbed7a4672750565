"""Hostile answers through the lookup client: deep JSON, NUL bytes, secrets echoed in escaped
forms. None may raise; each gives an exchange with a clear error kind, storable on PostgreSQL."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from linker.lookup import AdaptorTarget, ErrorKind
from linker.redaction import MASK
from tests.unit.test_client_unit import URL, FakeAdaptor, answer, run

HARD_PASSWORD = 'pa"ss\\wörd&<é>-42'


def _deep(depth: int) -> bytes:
    return b'{"results":' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [490, 5_000, 200_000])
def test_deep_json_gives_an_invalid_json_exchange(depth: int) -> None:
    exchange = run(FakeAdaptor(answer(raw=_deep(depth))).client(), AdaptorTarget(URL))
    assert exchange.error is not None
    assert exchange.error.kind is ErrorKind.INVALID_JSON
    assert "deeper than 64 levels" in exchange.error.message
    assert exchange.results == ()
    assert exchange.response is not None and exchange.response.status == 200


def test_deep_json_error_body_is_not_read_as_detail() -> None:
    exchange = run(FakeAdaptor(answer(raw=_deep(490), status=500)).client(), AdaptorTarget(URL))
    assert exchange.error is not None and exchange.error.kind is ErrorKind.HTTP_STATUS


def test_raw_nul_byte_in_body_is_replaced_in_the_record() -> None:
    exchange = run(FakeAdaptor(answer(raw=b'{"results": []}\x00junk')).client(),
                   AdaptorTarget(URL))
    assert exchange.error is not None and exchange.error.kind is ErrorKind.INVALID_JSON
    assert exchange.response is not None
    assert "\x00" not in exchange.response.body
    assert "\ufffd" in exchange.response.body


def test_escaped_nul_in_a_pulled_field_is_replaced_in_results_and_body() -> None:
    body = {"results": [{"externalCustomerId": "42", "name": "Mar\u0000tha",
                         "customAttributes": {"tier\u0000": "gold\u0000"}}]}
    exchange = run(FakeAdaptor(answer(body)).client(), AdaptorTarget(URL))
    assert exchange.ok, exchange.error
    result = exchange.results[0]
    assert result.name == "Mar\ufffdtha"
    dumped = json.dumps(result.model_dump(by_alias=True, mode="json"))
    assert "\\u0000" not in dumped
    assert exchange.response is not None and "\\u0000" not in exchange.response.body


@pytest.mark.parametrize("echo", [
    json.dumps(HARD_PASSWORD),
    json.dumps(HARD_PASSWORD, ensure_ascii=False),
    json.dumps(HARD_PASSWORD).replace("&", "\\u0026").replace("<", "\\u003c"),
    # every character escaped: only masking the decoded value catches this one
    '"' + "".join(f"\\u{ord(c):04x}" for c in HARD_PASSWORD) + '"',
    json.dumps(quote(HARD_PASSWORD, safe="")),
    json.dumps(base64.b64encode(f"user:{HARD_PASSWORD}".encode()).decode()),
], ids=["json-ascii", "json", "go", "all-escaped", "url", "basic"])
def test_echoed_secret_never_reaches_results_or_the_recorded_body(echo: str) -> None:
    raw = ('{"results":[{"externalCustomerId":"42","name":' + echo + ',"customAttributes":'
           '{"echo":' + echo + '}}]}').encode()
    target = AdaptorTarget(URL, username="user", password=HARD_PASSWORD)
    exchange = run(FakeAdaptor(answer(raw=raw)).client(), target)
    assert exchange.ok, exchange.error
    assert exchange.results[0].name == MASK
    assert exchange.response is not None
    stored = exchange.response.body
    for needle in (HARD_PASSWORD, echo.strip('"'), "u0061", "pa\\u0022"):
        assert needle not in stored
    assert json.loads(stored)["results"][0]["customAttributes"]["echo"] == MASK


def test_unchanged_bodies_are_stored_byte_for_byte() -> None:
    raw = b'{ "results" : [ ] }'
    exchange = run(FakeAdaptor(answer(raw=raw)).client(),
                   AdaptorTarget(URL, password=HARD_PASSWORD))
    assert exchange.response is not None and exchange.response.body == raw.decode()
