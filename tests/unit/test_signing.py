"""Request signing: every shared vector reproduced, tampering and staleness refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from linker import signing
from linker.signing import SignatureError

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "signing_vectors.json").read_text())[
    "vectors"
]


def _body(v: dict[str, Any]) -> bytes:
    return str(v["body_utf8"]).encode("utf-8")


def _signed_headers(v: dict[str, Any]) -> dict[str, str]:
    auth = signing.authorization_header(v["signing_key"], v["method"], v["url"], v["headers"],
                                        _body(v))
    return {**v["headers"], "Gladly-Authorization": auth, "Host": "adaptor.example",
            "User-Agent": "test", "Content-Length": str(len(_body(v)))}


def _sent_at(v: dict[str, Any]) -> datetime:
    return signing.parse_time(v["headers"]["Gladly-Time"])


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_canonical_request(v: dict[str, Any]) -> None:
    names = signing.signable_header_names(v["headers"])
    canonical = signing.canonical_request(v["method"], v["url"], v["headers"], names, _body(v))
    assert canonical == v["expected_canonical_request"]
    assert signing.string_to_sign(v["headers"]["Gladly-Time"], canonical) == v[
        "expected_string_to_sign"
    ]


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_authorization_header(v: dict[str, Any]) -> None:
    header = signing.authorization_header(v["signing_key"], v["method"], v["url"], v["headers"],
                                          _body(v))
    assert header == v["expected_gladly_authorization"]


def test_salted_key_matches_worked_example() -> None:
    key = signing.salted_key("test-apikey-1", "20190213T214016Z")
    assert key.hex() == "63268c9529c307d562837baf622f84d77e2772ff634fa7192ddb83dd0398747e"


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_verifies(v: dict[str, Any]) -> None:
    signing.verify_request(v["signing_key"], v["method"], v["url"], _signed_headers(v), _body(v),
                           now=_sent_at(v) + timedelta(seconds=30))


def test_transport_headers_are_not_signed() -> None:
    names = signing.signable_header_names(
        {"Host": "h", "Content-Length": "1", "User-Agent": "u", "Accept-Encoding": "gzip",
         "Accept": "application/json", "X-Api-Key": "k"}
    )
    assert names == ["accept", "x-api-key"]


def test_tampered_body_is_refused() -> None:
    v = VECTORS[0]
    with pytest.raises(SignatureError) as err:
        signing.verify_request(v["signing_key"], v["method"], v["url"], _signed_headers(v),
                               _body(v).replace(b"Apple", b"Peach"), now=_sent_at(v))
    assert err.value.detail == "Signature is incorrect"


def test_tampered_signed_header_is_refused() -> None:
    v = VECTORS[2]
    headers = {**_signed_headers(v), "X-Api-Key": "k-999"}
    with pytest.raises(SignatureError, match="incorrect"):
        signing.verify_request(v["signing_key"], v["method"], v["url"], headers, _body(v),
                               now=_sent_at(v))


def test_tampered_time_is_refused() -> None:
    v = VECTORS[0]
    headers = {**_signed_headers(v), "Gladly-Time": "20190213T214017Z"}
    with pytest.raises(SignatureError, match="incorrect"):
        signing.verify_request(v["signing_key"], v["method"], v["url"], headers, _body(v),
                               now=_sent_at(v))


def test_wrong_key_is_refused() -> None:
    v = VECTORS[0]
    with pytest.raises(SignatureError, match="incorrect"):
        signing.verify_request("other-key", v["method"], v["url"], _signed_headers(v), _body(v),
                               now=_sent_at(v))


@pytest.mark.parametrize("offset", [timedelta(minutes=6), timedelta(minutes=-6)])
def test_stale_or_future_time_is_refused(offset: timedelta) -> None:
    v = VECTORS[0]
    with pytest.raises(SignatureError) as err:
        signing.verify_request(v["signing_key"], v["method"], v["url"], _signed_headers(v),
                               _body(v), now=_sent_at(v) + offset)
    assert err.value.code == "too_old"


def test_skew_is_configurable() -> None:
    v = VECTORS[0]
    signing.verify_request(v["signing_key"], v["method"], v["url"], _signed_headers(v), _body(v),
                           now=_sent_at(v) + timedelta(hours=1), max_skew=timedelta(hours=2))


def test_missing_authorization_names_the_header() -> None:
    v = VECTORS[0]
    with pytest.raises(SignatureError, match="Gladly-Authorization header is missing"):
        signing.verify_request(v["signing_key"], v["method"], v["url"], v["headers"], _body(v))


def test_missing_signed_header_names_it() -> None:
    v = VECTORS[0]
    headers = {k: val for k, val in _signed_headers(v).items() if k != "X-B3-Traceid"}
    with pytest.raises(SignatureError, match="x-b3-traceid header is missing"):
        signing.verify_request(v["signing_key"], v["method"], v["url"], headers, _body(v),
                               now=_sent_at(v))


def test_malformed_authorization_is_refused() -> None:
    v = VECTORS[0]
    headers = {**v["headers"], "Gladly-Authorization": "garbage"}
    with pytest.raises(SignatureError, match="malformed"):
        signing.verify_request(v["signing_key"], v["method"], v["url"], headers, _body(v),
                               now=_sent_at(v))


def test_format_time_round_trips() -> None:
    moment = datetime(2026, 11, 27, 8, 15, tzinfo=UTC)
    assert signing.format_time(moment) == "20261127T081500Z"
    assert signing.parse_time("20261127T081500Z") == moment
