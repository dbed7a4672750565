"""Copy as cURL: secrets become $ENV_VARS, the signature note, the linker lookup equivalent."""

from __future__ import annotations

import shlex

from linker.contract import RequestKind, detailed_request, search_request
from linker.curl import SIGNATURE_ENV, curl_command, header_env_name
from linker.lookup.exchange import RecordedRequest

URL = "http://127.0.0.1:8401/lookup"


def _request(body: bytes, *, signed: bool = True, basic: bool = True) -> RecordedRequest:
    headers = {"Host": "127.0.0.1:8401", "Content-Length": str(len(body)),
               "Accept": "application/json", "Content-Type": "application/json",
               "Gladly-Time": "20261203T101500Z", "X-Api-Key": "****", "X-Tenant": "eu-1",
               "User-Agent": "Linker/0.1", "Accept-Encoding": "gzip"}
    if basic:
        headers["Authorization"] = "Basic ****"
        headers["WWW-Authenticate"] = 'Basic realm="shop"'
    if signed:
        headers["Gladly-Authorization"] = ("SigningAlgorithm=hmac-sha256, SignedHeaders=accept;"
                                           "content-type;gladly-time, Signature=****")
    return RecordedRequest("POST", URL, headers, body.decode())


def test_secrets_become_variables_and_the_rest_is_kept() -> None:
    curl = curl_command(_request(search_request("c1", {"email": "ann@x.com"}).body()),
                        kind=RequestKind.SEARCH, username="linker", integration="Shop")
    words = shlex.split(curl.command.replace("\\\n", ""))
    assert words[:6] == ["curl", "-sS", "--compressed", "-X", "POST", URL]
    assert "linker:${LINKER_LOOKUP_PASSWORD}" in words
    assert "X-Api-Key: ${LINKER_HEADER_X_API_KEY}" in words
    assert f"Gladly-Authorization: ${{{SIGNATURE_ENV}}}" in words
    assert "X-Tenant: eu-1" in words
    assert not any(w.startswith(("Host:", "Content-Length:", "Accept-Encoding:")) for w in words)
    body = search_request("c1", {"email": "ann@x.com"}).body().decode()
    assert words[-2:] == ["--data-raw", body]
    assert "****" not in curl.command
    assert {e.name for e in curl.env} == {"LINKER_LOOKUP_PASSWORD", "LINKER_HEADER_X_API_KEY",
                                          SIGNATURE_ENV, "LINKER_LOOKUP_SIGNING_KEY"}
    assert "recomputed" in curl.note and "linker lookup" in curl.note


def test_lookup_equivalent_of_a_search() -> None:
    body = search_request("c1", {"email": "ann@x.com", "orderNumber": "A-1"}).body()
    curl = curl_command(_request(body), kind=RequestKind.SEARCH, username="linker")
    words = shlex.split(curl.lookup_command)
    assert words[:4] == ["linker", "lookup", URL, "--basic"]
    joined = " ".join(words)
    assert "--email ann@x.com" in joined and "--field orderNumber=A-1" in joined
    assert "--customer-id c1" in joined and "--username linker" in joined
    assert "--realm shop" in joined and "--header X-Tenant: eu-1" in joined
    assert "X-Api-Key: ${LINKER_HEADER_X_API_KEY}" in words
    assert "--secret-header" in words


def test_lookup_equivalent_of_a_detailed_lookup() -> None:
    body = detailed_request("c1", "shop-1", "Ann", ["a@x.com"], ["+15550001"], {"tier": "G"}).body()
    words = shlex.split(curl_command(_request(body, basic=False), kind=RequestKind.DETAILED)
                        .lookup_command)
    joined = " ".join(words)
    assert "--detailed" in words and "--external-id shop-1" in joined
    assert "--email a@x.com" in joined and "--phone +15550001" in joined
    assert "--field tier=G" in joined and "--username" not in words


def test_unsigned_request_needs_no_signature() -> None:
    curl = curl_command(_request(b'{"lookupLevel":"BASIC","query":{}}', signed=False,
                                 basic=False), kind=RequestKind.SEARCH)
    assert SIGNATURE_ENV not in curl.command and "not signed" in curl.note


def test_shell_metacharacters_stay_literal() -> None:
    body = search_request(None, {"name": "O'Brien $(rm -rf /) `x`"}).body()
    curl = curl_command(_request(body), kind=RequestKind.SEARCH, username='u"$x')
    words = shlex.split(curl.command.replace("\\\n", ""))
    assert words[-1] == body.decode()
    assert 'u\\"\\$x:${LINKER_LOOKUP_PASSWORD}' in curl.command
    assert header_env_name("x-api.key") == "LINKER_HEADER_X_API_KEY"
