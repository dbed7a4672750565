"""The reference adaptor end to end: in-process through httpx.ASGITransport and over loopback."""

from __future__ import annotations

import argparse
import base64
import json
import random
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from linker.adaptor import BackgroundServer, create_app, load_dataset, parse_fault
from linker.adaptor.app import DELAY_HEADER
from linker.cli import adaptor_cmd
from linker.cli.main import build_parser
from linker.contract import encode_json
from linker.signing import authorization_header, format_time
from tests.integration.tls import self_signed

BASE = "http://adaptor.test"
KEY = "reference-adaptor-test-key-4f1c"
NOW = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
Json = dict[str, Any]


def envelope(level: str, query: Json, unique: bool = False) -> bytes:
    """A request body as Gladly sends it."""
    return encode_json({"lookupLevel": level, "query": query, "uniqueMatchRequired": unique})


def gladly_headers(url: str, body: bytes, *, key: str = KEY, at: datetime = NOW,
                   extra: dict[str, str] | None = None) -> dict[str, str]:
    """The contract's section 1.2 headers, signed with ``key`` at time ``at``."""
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               "Gladly-Time": format_time(at), "Gladly-Correlation-Id": "vXmSEPjVSWCaCMzvjufxZg",
               "X-B3-Traceid": "bd799210f8d549609a08ccef8ee7f166", **(extra or {})}
    headers["Gladly-Authorization"] = authorization_header(key, "POST", url, headers, body)
    return headers


def post(app: Starlette, body: bytes, headers: dict[str, str] | None = None,
         path: str = "/") -> httpx.Response:
    """POST raw bytes to the app in-process (in a worker thread with its own event loop, so
    it works even when another test left a loop running in this thread, e.g. Playwright)."""
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.post(path, content=body, headers=headers or {})
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, go).result()


def lookup(app: Starlette, level: str, query: Json, *, signed: bool = False,
           path: str = "/") -> httpx.Response:
    """A lookup request, signed with KEY at NOW when ``signed``."""
    body = envelope(level, query, unique=level == "DETAILED")
    headers = gladly_headers(BASE + path, body) if signed else {"Content-Type": "application/json"}
    return post(app, body, headers, path)


def results(response: httpx.Response) -> list[Json]:
    """The results of a 200 JSON answer."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    found: list[Json] = response.json()["results"]
    return found


def ids(response: httpx.Response) -> list[str]:
    """externalCustomerIds of the results."""
    return [r["externalCustomerId"] for r in results(response)]


@pytest.fixture(scope="module")
def shop() -> Starlette:
    return create_app("shop")


# ------------------------------------------------------------------------------ BASIC search


def test_basic_search_by_email_returns_contact_data_without_transactions(shop: Starlette) -> None:
    record = next(r for r in load_dataset("shop").records if r.phones and not r.duplicate_of
                  and r.emails[0] not in load_dataset("shop").duplicate_emails())
    found = results(lookup(shop, "BASIC", {"email": f"  {record.emails[0].upper()} "}))
    assert found == [record.basic()]
    assert "transactions" not in found[0]
    assert set(found[0]) == {"externalCustomerId", "name", "address", "emails", "phones",
                             "customAttributes"}


def test_basic_search_by_emails_list_matches_any(shop: Starlette) -> None:
    first, second = load_dataset("shop").records[10], load_dataset("shop").records[11]
    response = lookup(shop, "BASIC", {"emails": [first.emails[0], "nobody@example.com",
                                                 second.emails[0]], "id": "gladly-id"})
    assert {first.external_customer_id, second.external_customer_id} <= set(ids(response))


@pytest.mark.parametrize("dataset", ["shop", "loyalty", "travel"])
def test_basic_search_by_phone_in_any_format(dataset: str) -> None:
    app = create_app(dataset)
    record = next(r for r in load_dataset(dataset).records if r.phones)
    e164 = record.phones[0].e164
    national = f"({e164[2:5]}) {e164[5:8]}-{e164[8:]}" if e164.startswith("+1") else e164
    assert record.external_customer_id in ids(lookup(app, "BASIC", {"phone": e164}))
    assert record.external_customer_id in ids(lookup(app, "BASIC", {"phones": [national]}))
    assert record.external_customer_id in ids(
        lookup(app, "BASIC", {"phone": record.phones[0].original}))


def test_basic_search_by_order_number_with_or_without_hash(shop: Starlette) -> None:
    record = next(r for r in load_dataset("shop").records if r.order_numbers())
    number = record.order_numbers()[0]
    assert ids(lookup(shop, "BASIC", {"orderNumber": number})) == [record.external_customer_id]
    assert ids(lookup(shop, "BASIC", {"orderNumber": number[1:]})) == [
        record.external_customer_id]


def test_order_number_search_never_returns_archived_orders(shop: Starlette) -> None:
    archived = load_dataset("shop").archived_order_numbers()
    assert archived
    for number in archived:
        assert results(lookup(shop, "BASIC", {"orderNumber": number})) == []
        assert results(lookup(shop, "BASIC", {"orderNumber": number.lstrip("#")})) == []


def test_detailed_still_shows_archived_orders(shop: Starlette) -> None:
    record = next(r for r in load_dataset("shop").records if r.archived_orders)
    found = results(lookup(shop, "DETAILED", {"externalCustomerId": record.external_customer_id}))
    statuses = {t["orderNumber"]: t["orderStatus"] for t in found[0]["transactions"]}
    assert {statuses[n] for n in record.archived_orders} == {"ARCHIVED"}
    assert all("archived" not in t for t in found[0]["transactions"])


def test_basic_search_by_name_only_without_other_keys(shop: Starlette) -> None:
    record = load_dataset("shop").records[3]
    assert record.external_customer_id in ids(lookup(shop, "BASIC", {"name": record.name.lower()}))
    assert ids(lookup(shop, "BASIC", {"name": record.name[:2]})) == []
    assert ids(lookup(shop, "BASIC", {"name": record.name, "email": "no@example.com"})) == []


def test_duplicate_accounts_make_an_email_ambiguous(shop: Starlette) -> None:
    duplicate = next(r for r in load_dataset("shop").records if r.duplicate_of)
    found = ids(lookup(shop, "BASIC", {"emails": [duplicate.emails[0]]}))
    assert len(found) >= 2
    assert {duplicate.external_customer_id, duplicate.duplicate_of} <= set(found)


def test_empty_or_unmatched_query_gives_empty_results(shop: Starlette) -> None:
    assert results(lookup(shop, "BASIC", {})) == []
    assert results(lookup(shop, "BASIC", {"id": "x", "favoriteFood": "Pie"})) == []
    assert results(lookup(shop, "BASIC", {"email": "nobody@nowhere.example"})) == []
    assert results(lookup(shop, "BASIC", {"phone": "not a phone"})) == []


# --------------------------------------------------------------------------------- DETAILED


def test_detailed_returns_exactly_one_full_record(shop: Starlette) -> None:
    record = next(r for r in load_dataset("shop").records if r.transactions)
    query = {"externalCustomerId": record.external_customer_id, "id": "g1", "name": "X",
             "emails": ["other@example.com"], "points": "100",
             "customAttributes": {"favoriteFood": "Pie"}}
    found = results(lookup(shop, "DETAILED", query))
    assert found == [record.detailed()]
    assert found[0]["transactions"][0]["type"] == "ORDER"


def test_detailed_for_each_dataset_has_its_transaction_type() -> None:
    for name, kind in (("loyalty", "GENERIC"), ("travel", "FLIGHT")):
        record = next(r for r in load_dataset(name).records if r.transactions)
        found = results(lookup(create_app(name), "DETAILED",
                               {"externalCustomerId": record.external_customer_id}))
        assert len(found) == 1
        assert {t["type"] for t in found[0]["transactions"]} == {kind}


def test_detailed_unknown_id_gives_empty_results(shop: Starlette) -> None:
    assert results(lookup(shop, "DETAILED", {"externalCustomerId": "shop-99999"})) == []


def test_detailed_without_id_is_422(shop: Starlette) -> None:
    response = lookup(shop, "DETAILED", {"emails": ["a@example.com"]})
    assert response.status_code == 422
    assert response.json()["errors"][0]["attr"] == "externalCustomerId"
    assert lookup(shop, "DETAILED", {"externalCustomerId": ["x"]}).status_code == 422


# ------------------------------------------------------------------------------ bad bodies


def test_non_json_body_is_400(shop: Starlette) -> None:
    response = post(shop, b"lookupLevel=BASIC")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["attr"], error["code"]) == ("body", "invalid")
    assert error["detail"]


@pytest.mark.parametrize(("body", "code"), [
    ({"query": {}}, "missing"), ({"lookupLevel": "FULL", "query": {}}, "invalid")])
def test_missing_or_unknown_lookup_level_is_422(shop: Starlette, body: Json, code: str) -> None:
    response = post(shop, encode_json(body))
    assert response.status_code == 422
    assert response.json()["errors"][0] == {**response.json()["errors"][0],
                                            "attr": "lookupLevel", "code": code}


def test_any_path_accepts_the_post(shop: Starlette) -> None:
    assert results(lookup(shop, "BASIC", {}, path="/api/v2/customer/lookup")) == []


# ------------------------------------------------------------------------------- signatures


@pytest.fixture(scope="module")
def signed_shop() -> Starlette:
    return create_app("shop", signing_key=KEY, now=lambda: NOW)


def test_signed_request_is_answered(signed_shop: Starlette) -> None:
    record = load_dataset("shop").records[0]
    response = lookup(signed_shop, "DETAILED", {"externalCustomerId": record.external_customer_id},
                      signed=True, path="/api/v2/customer/lookup")
    assert ids(response) == [record.external_customer_id]


def _refusal(response: httpx.Response) -> Json:
    assert response.status_code == 401
    error: Json = response.json()["errors"][0]
    return error


def test_missing_signature_is_401(signed_shop: Starlette) -> None:
    error = _refusal(lookup(signed_shop, "BASIC", {}))
    assert error == {"attr": "Gladly-Authorization", "code": "missing",
                     "detail": "Gladly-Authorization header is missing"}


def test_wrong_key_is_401(signed_shop: Starlette) -> None:
    body = envelope("BASIC", {})
    error = _refusal(post(signed_shop, body, gladly_headers(BASE + "/", body, key="other")))
    assert (error["code"], error["detail"]) == ("incorrect", "Signature is incorrect")


def test_tampered_body_or_path_is_401(signed_shop: Starlette) -> None:
    body = envelope("BASIC", {"email": "a@example.com"})
    headers = gladly_headers(BASE + "/", body)
    assert _refusal(post(signed_shop, envelope("BASIC", {}), headers))["code"] == "incorrect"
    assert _refusal(post(signed_shop, body, headers, path="/other"))["code"] == "incorrect"


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_stale_signature_is_401(signed_shop: Starlette, offset: timedelta) -> None:
    body = envelope("BASIC", {})
    error = _refusal(post(signed_shop, body, gladly_headers(BASE + "/", body, at=NOW + offset)))
    assert (error["code"], error["detail"]) == ("too_old", "Signature is too old")


def test_skew_within_the_window_is_accepted(signed_shop: Starlette) -> None:
    body = envelope("BASIC", {})
    headers = gladly_headers(BASE + "/", body, at=NOW - timedelta(minutes=4))
    assert results(post(signed_shop, body, headers)) == []


# ------------------------------------------------------------------------------- basic auth


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_required_when_configured() -> None:
    app = create_app("shop", username="gladly", password="s3cret-pass")
    body = envelope("BASIC", {})
    for header in ({}, {"Authorization": _basic("gladly", "wrong-pass")},
                   {"Authorization": "Bearer abc"}, {"Authorization": "Basic !!!"}):
        response = post(app, body, header)
        assert _refusal(response) == {"attr": "Authorization", "code": "invalid",
                                      "detail": "Basic credentials are missing or wrong"}
        assert "wrong-pass" not in response.text and "s3cret" not in response.text
    assert results(post(app, body, {"Authorization": _basic("gladly", "s3cret-pass")})) == []


def test_basic_auth_and_signature_together() -> None:
    app = create_app("shop", signing_key=KEY, username="gladly", password="pw", now=lambda: NOW)
    body = envelope("BASIC", {})
    extra = {"Authorization": _basic("gladly", "pw"), "WWW-Authenticate": 'Basic realm=""'}
    assert results(post(app, body, gladly_headers(BASE + "/", body, extra=extra))) == []
    unsigned = post(app, body, extra)
    assert _refusal(unsigned)["attr"] == "Gladly-Authorization"


# ----------------------------------------------------------------------------------- faults


def faulty(*faults: str, seed: int = 1) -> Starlette:
    """The shop app with these faults and a seeded rng."""
    return create_app("shop", faults=[parse_fault(f) for f in faults], rng=random.Random(seed))


def _some_email() -> str:
    return load_dataset("shop").records[0].emails[0]


def test_latency_and_jitter_report_the_delay_applied() -> None:
    response = lookup(faulty("latency:20"), "BASIC", {})
    assert response.headers[DELAY_HEADER] == "20"
    expected = 20 + random.Random(9).uniform(0, 30)
    response = lookup(faulty("latency:20", "jitter:30", seed=9), "BASIC", {})
    assert response.headers[DELAY_HEADER] == f"{expected:.0f}"
    assert DELAY_HEADER not in lookup(faulty(), "BASIC", {}).headers


def test_error_rate_answers_500_or_503_for_that_share() -> None:
    always = faulty("error-rate:1", seed=4)
    statuses = {lookup(always, "BASIC", {}).status_code for _ in range(30)}
    assert statuses == {500, 503}
    error = lookup(always, "BASIC", {}).json()["errors"][0]
    assert error["code"] == "server_error"
    never = faulty("error-rate:0")
    assert {lookup(never, "BASIC", {}).status_code for _ in range(10)} == {200}
    half = faulty("error-rate:0.5", seed=4)
    assert {lookup(half, "BASIC", {}).status_code for _ in range(40)} >= {200, 500, 503}


def test_status_fault_always_answers_that_code() -> None:
    response = lookup(faulty("status:418"), "BASIC", {})
    assert response.status_code == 418
    assert response.headers["content-type"] == "application/json"
    assert "I'm a Teapot" in response.json()["errors"][0]["detail"]


def test_malformed_json_is_200_json_that_does_not_parse() -> None:
    response = lookup(faulty("malformed-json"), "BASIC", {"email": _some_email()})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_html_error_page_is_served_as_200_html() -> None:
    response = lookup(faulty("html-error"), "BASIC", {})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Internal Server Error" in response.text


def test_json_as_html_is_valid_json_with_the_wrong_type() -> None:
    response = lookup(faulty("json-as-html"), "BASIC", {"email": _some_email()})
    assert response.headers["content-type"].startswith("text/html")
    assert response.json()["results"][0]["emails"][0]["original"] == _some_email()


def test_missing_id_drops_external_customer_id() -> None:
    found = results(lookup(faulty("missing-id"), "BASIC", {"email": _some_email()}))
    assert found
    assert all("externalCustomerId" not in r and r["name"] for r in found)


def test_nested_attributes_nest_under_the_dataset_name() -> None:
    record = load_dataset("shop").records[0]
    found = results(lookup(faulty("nested-attributes"), "DETAILED",
                           {"externalCustomerId": record.external_customer_id}))
    assert found[0]["customAttributes"] == {"shop": dict(record.custom_attributes)}


def test_numeric_values_send_numbers() -> None:
    record = next(r for r in load_dataset("shop").records if r.transactions)
    found = results(lookup(faulty("numeric-values"), "DETAILED",
                           {"externalCustomerId": record.external_customer_id}))
    assert found[0]["externalCustomerId"] == int(record.external_customer_id.split("-")[1])
    assert isinstance(found[0]["customAttributes"]["orderCount"], int)
    assert isinstance(found[0]["transactions"][0]["orderTotal"], float)
    loyalty = create_app("loyalty", faults=[parse_fault("numeric-values")])
    member = load_dataset("loyalty").records[0]
    query = {"externalCustomerId": member.external_customer_id}
    found = results(lookup(loyalty, "DETAILED", query))
    assert found[0]["customAttributes"]["points"] == int(member.custom_attributes["points"])


def test_duplicate_results_make_every_match_ambiguous() -> None:
    record = load_dataset("shop").records[5]
    found = ids(lookup(faulty("duplicate-results"), "DETAILED",
                       {"externalCustomerId": record.external_customer_id}))
    assert len(found) == 2
    assert found[0] == record.external_customer_id
    assert found[1] != found[0]


def test_oversize_pads_the_body() -> None:
    response = lookup(faulty("oversize:64"), "BASIC", {"email": _some_email()})
    assert len(response.content) >= 64 * 1024
    assert response.json()["results"][0]["emails"][0]["original"] == _some_email()


def test_redirect_answers_302_to_moved() -> None:
    response = lookup(faulty("redirect"), "BASIC", {})
    assert response.status_code == 302
    assert response.headers["location"] == "/moved"


def test_faults_combine() -> None:
    app = faulty("numeric-values", "nested-attributes", "json-as-html")
    record = load_dataset("shop").records[0]
    response = lookup(app, "DETAILED", {"externalCustomerId": record.external_customer_id})
    assert response.headers["content-type"].startswith("text/html")
    attributes = response.json()["results"][0]["customAttributes"]["shop"]
    assert isinstance(attributes["orderCount"], int)


def test_signature_is_checked_before_result_faults() -> None:
    app = create_app("shop", signing_key=KEY, now=lambda: NOW,
                     faults=[parse_fault("malformed-json")])
    assert _refusal(lookup(app, "BASIC", {}))["code"] == "missing"


# ---------------------------------------------------------------------- over real loopback


def test_background_server_serves_signed_lookups_over_loopback() -> None:
    app = create_app("loyalty", signing_key=KEY)
    record = load_dataset("loyalty").records[0]
    with BackgroundServer(app) as server:
        assert server.url.startswith("http://127.0.0.1:")
        url = server.url + "lookup?tenant=acme"
        body = envelope("DETAILED", {"externalCustomerId": record.external_customer_id}, True)
        headers = gladly_headers(url, body, at=datetime.now(UTC))
        response = httpx.post(url, content=body, headers=headers, timeout=10)
    assert ids(response) == [record.external_customer_id]
    assert not server.running


def test_background_server_serves_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with BackgroundServer(create_app("travel"), ssl_certfile=cert, ssl_keyfile=key) as server:
        assert server.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=cert)
        with httpx.Client(verify=context, timeout=10) as client:
            response = client.post(server.url, content=envelope("BASIC", {}))
    assert results(response) == []


class _Spy:
    """Wraps an ASGI app; events say when a request arrived and when the app returned."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.arrived = threading.Event()
        self.finished = threading.Event()

    async def __call__(self, scope: Any, receive: Callable[..., Any],
                       send: Callable[..., Any]) -> None:
        if scope["type"] == "http":
            self.arrived.set()
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.finished.set()


def test_hang_ends_when_the_client_gives_up() -> None:
    spy = _Spy(faulty("hang"))
    with BackgroundServer(spy) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url, content=envelope("BASIC", {}), timeout=0.2)
        assert spy.finished.wait(timeout=10)
    assert not server.running


def test_background_server_stops_with_a_hanging_request_in_flight() -> None:
    spy = _Spy(faulty("hang"))
    outcome: dict[str, Any] = {}

    def client(url: str) -> None:
        try:
            outcome["response"] = httpx.post(url, content=envelope("BASIC", {}), timeout=60)
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    server = BackgroundServer(spy)
    with server:
        caller = threading.Thread(target=client, args=(server.url,), daemon=True)
        caller.start()
        assert spy.arrived.wait(timeout=10)
        assert not spy.finished.is_set()
    assert not server.running
    caller.join(timeout=10)
    assert not caller.is_alive()
    assert outcome["response"].status_code == 503
    assert outcome["response"].json()["errors"][0]["code"] == "shutting_down"


# --------------------------------------------------------------------------------------- CLI


def test_cli_parses_serve_and_prints_no_secrets(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    served: dict[str, Any] = {}

    def fake_serve(app: Starlette, host: str, port: int, **kwargs: Any) -> None:
        served.update(app=app, host=host, port=port, **kwargs)

    monkeypatch.setattr(adaptor_cmd, "serve", fake_serve)
    args = build_parser().parse_args(
        ["adaptor", "serve", "--dataset", "loyalty", "--size", "20", "--signing-key", "k-123",
         "--username", "gladly", "--password", "pw-456", "--fault", "latency:5",
         "--fault", "missing-id"])
    assert args.func(args) == 0
    line = capsys.readouterr().out.strip()
    assert "http://127.0.0.1:8402/" in line
    assert "signature required" in line and "basic auth on" in line
    assert "latency:5, missing-id" in line and "20 records" in line
    assert "k-123" not in line and "pw-456" not in line and "gladly" not in line
    assert (served["host"], served["port"]) == ("127.0.0.1", 8402)
    refused = post(served["app"], envelope("BASIC", {}),
                   {"Authorization": _basic("gladly", "pw-456")})
    assert _refusal(refused)["attr"] == "Gladly-Authorization"


def test_cli_default_ports_and_plain_summary() -> None:
    parser = build_parser()
    for dataset, port in (("shop", 8401), ("travel", 8403)):
        args = parser.parse_args(["adaptor", "serve", "--dataset", dataset])
        line = adaptor_cmd.describe(args, port, 300)
        assert f":{port}/" in line
        assert "no signature required" in line and "basic auth off" in line
        assert "faults: none" in line


def test_cli_bad_fault_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["adaptor", "serve", "--dataset", "shop", "--fault", "boom"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "unknown fault 'boom'" in err and "latency:MS" in err


def test_cli_namespace_has_func() -> None:
    args = build_parser().parse_args(["adaptor", "serve", "--dataset", "shop"])
    assert isinstance(args, argparse.Namespace)
    assert args.func is adaptor_cmd.run_serve
