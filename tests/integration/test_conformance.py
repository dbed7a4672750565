"""Conformance checks against the reference adaptor, in-process and over loopback sockets:
with no fault everything passes; each fault fails the check it should and only that one.
Then the stored report cards of the service, and `linker conformance` over a real socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from linker.adaptor import BackgroundServer, create_app, parse_fault
from linker.cli.main import main
from linker.conformance import (
    CHECK_TITLES,
    CheckStatus,
    ConformanceOptions,
    ConformanceReport,
    p95,
    run_checks,
)
from linker.core.permissions import Actor, Role
from linker.lookup import AdaptorTarget, LookupClient, Trigger
from linker.services.conformance import ConformanceService
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, NotFound, PermissionDenied
from linker.store.models import ExchangeRecord
from tests.integration.world import SIGNING_KEY, World, unique_record

KEY = "conformance-signing-key-01"
PASSWORD = "conformance-password-02"
RECORD = unique_record()
EMAIL = RECORD.emails[0]
PHONE = RECORD.phones[0].original if RECORD.phones else None
DEV = Actor("dana", Role.DEVELOPER)


@contextmanager
def serving(mode: str, *faults: str, **app_options: Any) -> Iterator[tuple[LookupClient, str]]:
    app = create_app("shop", faults=tuple(parse_fault(f) for f in faults), **app_options)
    if mode == "asgi":
        yield LookupClient(transport=httpx.ASGITransport(app=app)), "http://adaptor.test/lookup"
        return
    with BackgroundServer(app) as server:
        yield LookupClient(), server.url + "lookup"


def _run(mode: str, *faults: str, app: dict[str, Any] | None = None,
         target: dict[str, Any] | None = None, **options: Any) -> ConformanceReport:
    app_options = {"signing_key": KEY} if app is None else app
    target_options = {"signing_key": KEY} if target is None else target
    with serving(mode, *faults, **app_options) as (client, url):
        return run_checks(client, AdaptorTarget(url, name="shop", **target_options),
                          ConformanceOptions(known_email=EMAIL, known_phone=PHONE, **options))


def _failed(report: ConformanceReport) -> set[str]:
    return {c.name for c in report.checks if c.status is CheckStatus.FAIL}


MODES = ["asgi", "loopback"]


@pytest.mark.parametrize("mode", MODES)
def test_a_conforming_adaptor_passes_every_check(mode: str) -> None:
    report = _run(mode)
    assert report.passed
    assert [c.name for c in report.checks] == list(CHECK_TITLES)
    assert {c.name: c.status for c in report.checks} == dict.fromkeys(CHECK_TITLES,
                                                                      CheckStatus.PASS)
    assert all(c.exchange is not None for c in report.checks)
    assert all(e.trigger is Trigger.CONFORMANCE for e in report.exchanges)
    assert report.check("detailed_by_id").message.endswith(RECORD.external_customer_id)


@pytest.mark.parametrize(("faults", "expected"), [
    (("json-as-html",), {"json_content_type"}),
    (("status:503",), {"basic_known_email"}),
    (("error-rate:1",), {"basic_known_email"}),
    (("malformed-json",), {"basic_known_email"}),
    (("missing-id",), {"basic_known_email"}),
    (("redirect",), {"basic_known_email"}),
    (("oversize:3000",), {"basic_known_email"}),
    (("html-error",), {"json_content_type", "basic_known_email"}),
    (("duplicate-results",), {"detailed_by_id"}),
    (("reject-unknown-keys",), {"unknown_query_key"}),
    (("match-anyone",), {"basic_unknown_email"}),
    (("hang",), {"reachable"}),
])
@pytest.mark.parametrize("mode", MODES)
def test_each_fault_fails_its_check_and_only_that_one(mode: str, faults: tuple[str, ...],
                                                      expected: set[str]) -> None:
    report = _run(mode, *faults, target={"signing_key": KEY, "timeout_s": 1.0})
    assert _failed(report) == expected, [(c.name, c.message) for c in report.checks]
    assert not report.passed
    for check in report.checks:
        if check.name in expected:
            assert check.exchange is not None and check.message


@pytest.mark.parametrize("mode", MODES)
def test_slow_adaptor_fails_only_latency(mode: str) -> None:
    report = _run(mode, "latency:300", latency_budget_ms=150, latency_calls=2)
    assert _failed(report) == {"latency_p95"}
    latency = report.check("latency_p95")
    assert latency.exchange is not None and latency.exchange.elapsed_ms >= 300
    assert "budget 150 ms" in latency.message


def test_nested_attributes_warn_but_do_not_fail() -> None:
    report = _run("asgi", "nested-attributes")
    assert report.passed and not _failed(report)
    assert report.check("basic_known_email").status is CheckStatus.WARN
    assert "customAttributes" in report.check("detailed_by_id").message


@pytest.mark.parametrize("mode", MODES)
def test_adaptor_that_ignores_signatures_fails_both_signature_checks(mode: str) -> None:
    report = _run(mode, app={})
    assert _failed(report) == {"unsigned_refused", "bad_signature_refused"}
    assert "accepted an unsigned request" in report.check("unsigned_refused").message


def test_without_a_signing_key_the_signature_checks_are_skipped() -> None:
    report = _run("asgi", app={}, target={})
    assert report.passed
    assert report.check("unsigned_refused").status is CheckStatus.SKIP
    assert report.check("bad_signature_refused").status is CheckStatus.SKIP


@pytest.mark.parametrize("mode", MODES)
def test_wrong_credentials_fail_auth_and_skip_the_rest(mode: str) -> None:
    report = _run(mode, app={"signing_key": KEY, "username": "linker", "password": PASSWORD},
                  target={"signing_key": KEY, "username": "linker", "password": "nope"})
    assert _failed(report) == {"auth_accepted"}
    later = list(CHECK_TITLES)[2:]
    assert all(report.check(n).status is CheckStatus.SKIP for n in later)


def test_unknown_person_fails_the_known_email_check_only() -> None:
    with serving("asgi", signing_key=KEY) as (client, url):
        report = run_checks(client, AdaptorTarget(url, signing_key=KEY),
                            ConformanceOptions(known_email="nobody@nowhere.invalid"))
    assert _failed(report) == {"basic_known_email"}
    assert report.check("detailed_by_id").status is CheckStatus.SKIP
    assert report.check("basic_known_phone").status is CheckStatus.SKIP


def test_p95_is_nearest_rank() -> None:
    assert p95([]) == 0.0
    assert p95([5.0, 1.0, 3.0]) == 5.0
    assert p95([float(i) for i in range(1, 101)]) == 95.0


# --- the service: stored report cards --------------------------------------------------------

def test_service_stores_exchanges_and_the_card(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    service = ConformanceService(world.ctx)
    first = service.run(DEV, shop, EMAIL, PHONE)
    assert first.passed and first.integration_name == "Shop" and first.actor == "dana"
    with world.ctx.db.session() as s:
        stored = {r.id: r for r in s.scalars(select(ExchangeRecord))}
    assert all(c.exchange_id in stored for c in first.checks)
    assert {r.trigger for r in stored.values()} == {"conformance"}
    dumped = json.dumps([[r.request_headers, r.request_body, r.response_headers, r.url,
                          r.response_body, r.error_message] for r in stored.values()])
    assert SIGNING_KEY not in dumped
    world.serve("Shop", "shop", "duplicate-results")
    second = service.run(DEV, shop, EMAIL)
    assert not second.passed and second.counts()["fail"] == 1
    detailed = next(c for c in second.checks if c.name == "detailed_by_id")
    assert detailed.status is CheckStatus.FAIL and detailed.exchange_id is not None
    assert [c.id for c in service.runs(DEV, shop)] == [second.id, first.id]
    assert service.get(DEV, first.id) == first
    with pytest.raises(NotFound):
        service.get(DEV, 999)
    with pytest.raises(InvalidInput, match="known_email"):
        service.run(DEV, shop, "not-an-email")


@pytest.mark.parametrize("role", list(Role))
def test_service_roles(ctx: ServiceContext, role: Role) -> None:
    actor = Actor("someone", role)
    service = ConformanceService(ctx)
    if role in (Role.ADMIN, Role.DEVELOPER):
        assert service.runs(actor, 1) == []
        with pytest.raises(NotFound):
            service.run(actor, 1, EMAIL)
    else:
        for call in (lambda: service.runs(actor, 1), lambda: service.run(actor, 1, EMAIL),
                     lambda: service.get(actor, 1)):
            with pytest.raises(PermissionDenied):
                call()


# --- the command line, over a real socket ---------------------------------------------------

def test_cli_report_card_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    app = create_app("shop", signing_key=KEY, username="linker", password=PASSWORD)
    with BackgroundServer(app) as server:
        auth = ["--signing-key", KEY, "--username", "linker", "--password", PASSWORD]
        assert main(["conformance", server.url, "--known-email", EMAIL, *auth]) == 0
        human = capsys.readouterr().out
        assert human.startswith(f"Conformance of {server.url}: PASSED")
        assert "PASS  DETAILED by the returned id gives exactly one result" in human
        assert main(["conformance", server.url, "--known-email", EMAIL, "--json", *auth]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["passed"] and len(data["checks"]) == len(CHECK_TITLES)
        bad = ["--signing-key", KEY, "--username", "linker", "--password", "wrong-one"]
        assert main(["conformance", server.url, "--known-email", EMAIL, "--json", *bad]) == 1
        out = capsys.readouterr().out
        assert json.loads(out)["passed"] is False
        for secret in (KEY, PASSWORD):
            assert secret not in human and secret not in out
    with pytest.raises(SystemExit) as usage:
        main(["conformance", "http://127.0.0.1:9/", "--known-email", "nope"])
    assert usage.value.code == 2
