"""The lookup client against the reference adaptor, in-process (ASGI) and over loopback.

Every fault profile and every error kind ends in the right kind with a clear message, and
nothing crashes. The CLI is exercised against a real server at the end.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from linker.adaptor.app import create_app
from linker.adaptor.datasets import load_dataset
from linker.adaptor.faults import parse_fault
from linker.adaptor.server import BackgroundServer
from linker.cli.main import main
from linker.contract import LookupRequest, Severity, detailed_request, search_request
from linker.lookup import AdaptorTarget, ErrorKind, Exchange, LookupClient
from tests.integration.tls import self_signed

MODES = ["asgi", "loopback"]
ASGI_URL = "http://adaptor.test/lookup"
SIGNING_KEY = "reference-signing-key-0001"
PASSWORD = "reference-password-01"
RECORD = load_dataset("shop").records[0]
EMAIL = RECORD.emails[0]


def _search() -> LookupRequest:
    return search_request("cust-1", {"email": EMAIL})


def _detailed() -> LookupRequest:
    return detailed_request("cust-1", RECORD.external_customer_id)


@contextmanager
def serving(app: Starlette, mode: str) -> Iterator[tuple[LookupClient, str]]:
    """A client and the URL reaching ``app``: through ASGITransport, or a loopback server."""
    if mode == "asgi":
        yield LookupClient(transport=httpx.ASGITransport(app=app)), ASGI_URL
        return
    with BackgroundServer(app) as server:
        yield LookupClient(), server.url + "lookup"


def call(mode: str, app: Starlette, request: LookupRequest | None = None,
         **target: Any) -> Exchange:
    """One lookup against ``app``; the target signs with SIGNING_KEY unless told otherwise."""
    target.setdefault("signing_key", SIGNING_KEY)
    with serving(app, mode) as (client, url):
        return client.lookup_sync(AdaptorTarget(url, name="shop", **target),
                                  request or _search())


def _app(*faults: str, **kw: Any) -> Starlette:
    kw.setdefault("signing_key", SIGNING_KEY)
    return create_app("shop", faults=tuple(parse_fault(f) for f in faults), **kw)


def _assert_failed(exchange: Exchange, kind: ErrorKind, needle: str) -> None:
    assert exchange.error is not None, "expected a failure"
    assert exchange.error.kind is kind, exchange.error
    assert needle in exchange.error.message, exchange.error.message
    assert not exchange.ok


@pytest.mark.parametrize("mode", MODES)
def test_signed_search_succeeds(mode: str) -> None:
    exchange = call(mode, _app())
    assert exchange.ok, exchange.error
    assert [r.external_customer_id for r in exchange.results][:1] == [RECORD.external_customer_id]
    assert exchange.response is not None and exchange.response.status == 200
    assert not [v for v in exchange.violations if v.severity is Severity.ERROR]


@pytest.mark.parametrize("mode", MODES)
def test_detailed_with_basic_auth_and_signature_succeeds(mode: str) -> None:
    app = _app(username="gladly", password=PASSWORD)
    exchange = call(mode, app, _detailed(), username="gladly", password=PASSWORD,
                    realm="Lookup")
    assert exchange.ok, exchange.error
    assert len(exchange.results) == 1
    assert exchange.results[0].transactions
    assert PASSWORD not in json.dumps(exchange.as_dict())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fault", ["latency:200", "jitter:100"])
def test_delay_faults_still_succeed(mode: str, fault: str) -> None:
    exchange = call(mode, _app(fault))
    assert exchange.ok, exchange.error
    assert exchange.response is not None
    assert "x-adaptor-delay-ms" in exchange.response.headers


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("fault", "settings", "request_kind", "kind", "needle"),
    [
        ("error-rate:1.0", {}, "search", ErrorKind.HTTP_STATUS, "adaptor failed"),
        ("status:503", {}, "search", ErrorKind.HTTP_STATUS, "HTTP 503"),
        ("hang", {"timeout_s": 1.0}, "search", ErrorKind.TIMEOUT, "no answer within 1.0 s"),
        ("malformed-json", {}, "search", ErrorKind.INVALID_JSON, "not valid JSON"),
        ("html-error", {}, "search", ErrorKind.INVALID_JSON, "HTML page"),
        ("missing-id", {}, "search", ErrorKind.CONTRACT, "results[0].externalCustomerId"),
        ("duplicate-results", {}, "detailed", ErrorKind.CONTRACT, "exactly one result"),
        ("oversize:64", {"max_body_bytes": 16 * 1024}, "search", ErrorKind.TOO_LARGE,
         "larger than 16 KiB"),
        ("redirect", {}, "search", ErrorKind.REDIRECT, "/moved"),
    ],
)
def test_fault_ends_in_the_right_kind(mode: str, fault: str, settings: dict[str, Any],
                                      request_kind: str, kind: ErrorKind, needle: str) -> None:
    request = _detailed() if request_kind == "detailed" else _search()
    exchange = call(mode, _app(fault), request, **settings)
    _assert_failed(exchange, kind, needle)


@pytest.mark.parametrize("mode", MODES)
def test_redirect_names_the_final_url(mode: str) -> None:
    exchange = call(mode, _app("redirect"))
    assert exchange.error is not None
    assert "configure the final URL" in exchange.error.message
    assert exchange.response is not None and exchange.response.status == 302


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("fault", "path"),
    [("json-as-html", "$"),
     ("nested-attributes", "results[0].customAttributes."),
     ("numeric-values", "results[0].externalCustomerId")],
)
def test_warning_faults_keep_the_exchange_ok(mode: str, fault: str, path: str) -> None:
    exchange = call(mode, _app(fault))
    assert exchange.ok, exchange.error
    assert exchange.violations
    assert all(v.severity is Severity.WARNING for v in exchange.violations)
    assert any(v.path.startswith(path) for v in exchange.violations), exchange.violations
    assert exchange.results


@pytest.mark.parametrize("mode", MODES)
def test_duplicate_results_in_a_search_are_returned(mode: str) -> None:
    exchange = call(mode, _app("duplicate-results"))
    assert exchange.ok, exchange.error
    assert len(exchange.results) >= 2


@pytest.mark.parametrize("mode", MODES)
def test_wrong_signing_key_is_refused_with_a_pointer_at_credentials(mode: str) -> None:
    exchange = call(mode, _app(), signing_key="not-the-right-key")
    _assert_failed(exchange, ErrorKind.HTTP_STATUS, "HTTP 401")
    assert exchange.error is not None
    assert "signing key" in exchange.error.message
    assert "Signature is incorrect" in exchange.error.message


@pytest.mark.parametrize("mode", MODES)
def test_missing_signature_is_refused(mode: str) -> None:
    exchange = call(mode, _app(), signing_key="")
    _assert_failed(exchange, ErrorKind.HTTP_STATUS, "HTTP 401")


@pytest.mark.parametrize("mode", MODES)
def test_wrong_basic_credentials_are_refused(mode: str) -> None:
    app = _app(username="gladly", password=PASSWORD)
    exchange = call(mode, app, username="gladly", password="wrong-password")
    _assert_failed(exchange, ErrorKind.HTTP_STATUS, "username/password")
    assert "wrong-password" not in json.dumps(exchange.as_dict())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_refused_port_is_unreachable() -> None:
    url = f"http://127.0.0.1:{_free_port()}/"
    exchange = LookupClient().lookup_sync(AdaptorTarget(url), _search())
    _assert_failed(exchange, ErrorKind.UNREACHABLE, "refused")
    assert exchange.response is None


def test_unresolvable_host_is_unreachable() -> None:
    exchange = LookupClient().lookup_sync(AdaptorTarget("http://nonexistent.invalid/"),
                                          _search())
    _assert_failed(exchange, ErrorKind.UNREACHABLE, "nonexistent.invalid")


def test_self_signed_certificate_is_a_tls_error(tmp_path: Path) -> None:
    certfile, keyfile = self_signed(tmp_path)
    with BackgroundServer(_app(), ssl_certfile=certfile, ssl_keyfile=keyfile) as server:
        assert server.url.startswith("https://")
        exchange = LookupClient().lookup_sync(
            AdaptorTarget(server.url, signing_key=SIGNING_KEY), _search())
    _assert_failed(exchange, ErrorKind.TLS, "certificate")
    assert exchange.response is None


def test_https_to_a_plain_http_server_is_a_tls_error() -> None:
    with BackgroundServer(_app()) as server:
        url = server.url.replace("http://", "https://")
        exchange = LookupClient().lookup_sync(AdaptorTarget(url, signing_key=SIGNING_KEY),
                                              _search())
    _assert_failed(exchange, ErrorKind.TLS, "TLS handshake")


# ---------------------------------------------------------------------------------- the CLI


def test_cli_json_against_the_reference_adaptor(capsys: pytest.CaptureFixture[str]) -> None:
    with BackgroundServer(_app()) as server:
        code = main(["lookup", server.url, "--basic", "--email", EMAIL,
                     "--signing-key", SIGNING_KEY, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["error"] is None
    assert out["response"]["status"] == 200
    assert out["results"][0]["externalCustomerId"] == RECORD.external_customer_id
    assert out["request"]["headers"]["Gladly-Authorization"].endswith("Signature=****")
    assert SIGNING_KEY not in json.dumps(out)
    assert {"request", "response", "error", "violations", "results", "elapsed_ms",
            "correlation_id"} <= set(out)


def test_cli_human_report_of_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    with BackgroundServer(_app("missing-id")) as server:
        code = main(["lookup", server.url, "--autolink", "--email", EMAIL,
                     "--signing-key", SIGNING_KEY])
    out = capsys.readouterr().out
    assert code == 1
    assert "> POST " in out
    assert "< HTTP 200" in out
    assert "Result: FAILED (contract)" in out
    assert "results[0].externalCustomerId" in out
    assert SIGNING_KEY not in out


def test_cli_transport_failure_has_null_response(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["lookup", f"http://127.0.0.1:{_free_port()}/", "--detailed",
                 "--external-id", "shop-00001", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["response"] is None
    assert out["error"]["kind"] == "unreachable"


@pytest.mark.parametrize("argv", [
    ["--detailed"],
    ["--basic", "--email", "a@b.co", "--header", "no-colon"],
    ["--basic", "--email", "a@b.co", "--field", "novalue"],
    ["--basic", "--email", "a@b.co", "--timeout", "0"],
    ["--basic", "--email", "a@b.co", "--timeout", "soon"],
    ["--basic", "--email", "a@b.co", "--timeout", "30"],
    ["--basic"],
    ["--autolink"],
    ["--basic", "--email", "a@b.co", "--header", "Gladly-Time: x"],
])
def test_cli_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["lookup", "http://127.0.0.1:9/", *argv])
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err
