"""Rate caps on SQLite and PostgreSQL: validation and how the settings flow (service, TOML apply,
CLI list, lookup target), the lookup client waiting at its gate over a loopback socket, and the
database gate shared by several clients (as several processes would share it)."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from linker.adaptor import BackgroundServer, create_app, parse_fault
from linker.cli.integrations_cmd import FileProblem, load_specs
from linker.cli.main import main
from linker.config import Settings
from linker.contract import search_request
from linker.core.permissions import SYSTEM
from linker.lookup import AdaptorTarget, LookupClient, lookup_many
from linker.lookup.ratelimit import LocalGate, RateCap
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput
from linker.services.integrations import (
    IntegrationChanges,
    IntegrationService,
    IntegrationSpec,
    caps_text,
)
from linker.services.targets import target_for
from linker.store.models import AuditEvent, Integration
from linker.store.ratelimit import DatabaseGate

URL = "https://shop-adaptor.example.com/lookup"


@pytest.fixture
def service(ctx: ServiceContext) -> IntegrationService:
    return IntegrationService(ctx)


# -- settings -----------------------------------------------------------------------------------


def test_caps_are_stored_shown_and_reach_the_lookup_target(service: IntegrationService,
                                                           ctx: ServiceContext) -> None:
    view = service.create(SYSTEM, IntegrationSpec(
        name="Shop", url=URL, max_concurrent_requests=4, max_requests_per_second=12.5))
    assert (view.max_concurrent_requests, view.max_requests_per_second) == (4, 12.5)
    assert view.rate_caps_text == "4 at once, 12.5 per second"
    assert view.display()["max_concurrent_requests"] == 4
    with ctx.db.session(readonly=True) as s:
        integration = s.get(Integration, view.id)
        assert integration is not None
        target = target_for(integration, ctx.secrets)
    assert target.rate_cap == RateCap(view.id, 4, 12.5)
    plain = service.create(SYSTEM, IntegrationSpec(name="Plain", url=URL))
    assert plain.rate_caps_text == "no cap"
    with ctx.db.session(readonly=True) as s:
        integration = s.get(Integration, plain.id)
        assert integration is not None
        assert target_for(integration, ctx.secrets).rate_cap is None


@pytest.mark.parametrize(("field", "value", "message"), [
    ("max_concurrent_requests", -1, "use 1 to 256"),
    ("max_concurrent_requests", 257, "use 1 to 256"),
    ("max_concurrent_requests", 2.5, "whole number"),
    ("max_concurrent_requests", True, "whole number"),
    ("max_concurrent_requests", "4", "whole number"),
    ("max_requests_per_second", -3, "use 0.1 to 10,000"),
    ("max_requests_per_second", 0.01, "use 0.1 to 10,000"),
    ("max_requests_per_second", 20_000, "use 0.1 to 10,000"),
    ("max_requests_per_second", float("nan"), "give a number"),
    ("max_requests_per_second", float("inf"), "give a number"),
    ("max_requests_per_second", "fast", "give a number"),
])
def test_bad_caps_are_refused_with_a_clear_message(service: IntegrationService, field: str,
                                                   value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        service.create(SYSTEM, IntegrationSpec(name="Shop", url=URL, **{field: value}))
    assert set(info.value.fields) == {field}
    assert message in info.value.fields[field]
    assert "for no cap" in info.value.fields[field]
    assert service.list(SYSTEM) == []  # nothing stored


def test_update_keeps_sets_and_clears_caps(service: IntegrationService,
                                           ctx: ServiceContext) -> None:
    view = service.create(SYSTEM, IntegrationSpec(name="Shop", url=URL))
    capped = service.update(SYSTEM, view.id, IntegrationChanges(
        max_concurrent_requests=3, max_requests_per_second=2))
    assert (capped.max_concurrent_requests, capped.max_requests_per_second) == (3, 2.0)
    kept = service.update(SYSTEM, view.id, IntegrationChanges(timeout_s=4))  # None keeps
    assert (kept.max_concurrent_requests, kept.max_requests_per_second) == (3, 2.0)
    cleared = service.update(SYSTEM, view.id, {"max_concurrent_requests": 0})  # 0 clears
    assert (cleared.max_concurrent_requests, cleared.max_requests_per_second) == (None, 2.0)
    with ctx.db.session(readonly=True) as s:
        events = list(s.scalars(select(AuditEvent).where(
            AuditEvent.action == "integration.updated").order_by(AuditEvent.id)))
    assert events[0].after == {"max_concurrent_requests": 3, "max_requests_per_second": 2.0}
    assert events[-1].before == {"max_concurrent_requests": 3}
    assert events[-1].after == {"max_concurrent_requests": None}


def test_apply_makes_caps_match_the_file(service: IntegrationService) -> None:
    text = (f'[[integration]]\nname = "Shop"\nurl = "{URL}"\nmax_concurrent_requests = 4\n'
            "max_requests_per_second = 10\n")
    [spec] = load_specs(text, env={})
    assert service.apply(SYSTEM, spec).integration.rate_caps_text == "4 at once, 10 per second"
    assert service.apply(SYSTEM, spec).action == "unchanged"
    [without] = load_specs(f'[[integration]]\nname = "Shop"\nurl = "{URL}"\n', env={})
    result = service.apply(SYSTEM, without)  # left out of the file: no cap
    assert result.changed == ("max_concurrent_requests", "max_requests_per_second")
    assert result.integration.rate_caps_text == "no cap"


@pytest.mark.parametrize(("line", "message"), [
    ("max_concurrent_requests = 2.5", "max_concurrent_requests must be a whole number"),
    ("max_concurrent_requests = true", "max_concurrent_requests must be a whole number"),
    ('max_requests_per_second = "10"', "max_requests_per_second must be a number"),
])
def test_apply_file_with_a_mistyped_cap_is_refused(line: str, message: str) -> None:
    with pytest.raises(FileProblem, match=message):
        load_specs(f'[[integration]]\nname = "Shop"\nurl = "{URL}"\n{line}\n', env={})


def test_cli_list_shows_the_caps(ctx: ServiceContext, settings: Settings, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    IntegrationService(ctx).create(SYSTEM, IntegrationSpec(
        name="Shop", url=URL, max_concurrent_requests=2, max_requests_per_second=0.5))
    monkeypatch.setenv("LINKER_HOME", str(tmp_path))
    monkeypatch.setenv("LINKER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LINKER_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["integrations", "list"]) == 0
    out = capsys.readouterr().out
    assert "rate cap" in out and "2 at once, 0.5 per second" in out


def test_caps_text() -> None:
    assert caps_text(None, None) == "no cap"
    assert caps_text(3, None) == "3 at once"
    assert caps_text(None, 2.0) == "2 per second"


# -- enforcement --------------------------------------------------------------------------------


class InFlight:
    """ASGI middleware counting the requests in flight (the most at once) and all of them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.now = 0
        self.most = 0
        self.total = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.total += 1
        self.most = max(self.most, self.now)
        try:
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


@pytest.fixture
def adaptor() -> Iterator[tuple[InFlight, str]]:
    recorder = InFlight(create_app("shop", faults=[parse_fault("latency:100")]))
    with BackgroundServer(recorder) as server:
        yield recorder, server.url


def _target(url: str, cap: RateCap | None) -> AdaptorTarget:
    return AdaptorTarget(url, name="Shop", rate_cap=cap)


def _jobs(target: AdaptorTarget, count: int) -> list[tuple[AdaptorTarget, Any]]:
    return [(target, search_request(None, {"email": f"nobody{i}@nowhere.example"}))
            for i in range(count)]


def test_the_client_waits_at_its_gate_for_a_capped_target(adaptor: tuple[InFlight, str]
                                                          ) -> None:
    recorder, url = adaptor
    client = LookupClient(gate=LocalGate())
    exchanges = asyncio.run(lookup_many(client, _jobs(_target(url, RateCap(1, 2)), 10)))
    assert all(e.ok for e in exchanges), [e.error for e in exchanges]
    assert recorder.total == 10
    assert recorder.most == 2  # the cap, reached and never passed


class RecordingGate:
    """A gate writing down when it admits and when the request leaves it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.caps: list[RateCap] = []

    @asynccontextmanager
    async def admit(self, cap: RateCap, hold_s: float) -> AsyncIterator[None]:
        self.caps.append(cap)
        self.events.append(f"admitted (hold {hold_s:g} s)")
        yield
        self.events.append("left")


def test_a_request_is_signed_and_timed_only_once_admitted(adaptor: tuple[InFlight, str]
                                                          ) -> None:
    """So waiting at the gate cannot make a signature stale or count against the timeout."""
    _, url = adaptor
    gate = RecordingGate()

    def now() -> datetime:
        gate.events.append("signed")
        return datetime.now(UTC)

    client = LookupClient(now=now, gate=gate)
    target = AdaptorTarget(url, name="Shop", timeout_s=3, rate_cap=RateCap(1, 1))
    exchange = client.lookup_sync(target, search_request(None, {"email": "a@nowhere.example"}))
    assert exchange.ok
    assert gate.events == ["admitted (hold 3 s)", "signed", "left"]
    client.lookup_sync(_target(url, None), search_request(None, {"email": "a@b.example"}))
    assert gate.events[-1] == "signed"  # an uncapped target does not pass the gate


def test_a_connection_test_passes_the_integrations_gate(adaptor: tuple[InFlight, str],
                                                        ctx: ServiceContext,
                                                        service: IntegrationService) -> None:
    """The service builds the target from the stored config, caps under the integration id."""
    _, url = adaptor
    gate = RecordingGate()
    ctx.client = LookupClient(gate=gate)
    view = service.create(SYSTEM, IntegrationSpec(name="Shop", url=url, timeout_s=2,
                                                  max_concurrent_requests=1))
    assert service.test_connection(SYSTEM, view.id).ok
    assert gate.caps == [RateCap(view.id, 1, None)]
    assert gate.events == ["admitted (hold 2 s)", "left"]


def test_without_a_cap_nothing_waits(adaptor: tuple[InFlight, str]) -> None:
    recorder, url = adaptor
    asyncio.run(lookup_many(LookupClient(), _jobs(_target(url, None), 10)))
    assert recorder.most > 2  # the recorder does see more than the cap above


def _database_gate(ctx: ServiceContext) -> DatabaseGate:
    if ctx.db.is_sqlite:
        pytest.skip("the database gate is for PostgreSQL (SQLite is one process)")
    return DatabaseGate(ctx.db)


def _integration(service: IntegrationService, url: str, **caps: Any) -> int:
    return service.create(SYSTEM, IntegrationSpec(name="Shop", url=url, **caps)).id


def test_context_on_postgresql_shares_the_caps_through_the_database(ctx: ServiceContext
                                                                    ) -> None:
    assert isinstance(ctx.client.gate, LocalGate if ctx.db.is_sqlite else DatabaseGate)


@pytest.mark.postgres
def test_two_clients_share_one_database_budget(ctx: ServiceContext, service: IntegrationService,
                                               adaptor: tuple[InFlight, str]) -> None:
    """Two clients with gates of their own (as two processes have) in two threads with
    event loops of their own: together never more than the cap in flight."""
    _database_gate(ctx)
    recorder, url = adaptor
    key = _integration(service, url, max_concurrent_requests=3)
    target = _target(url, RateCap(key, 3))
    failures: list[str] = []

    def worker() -> None:
        client = LookupClient(gate=DatabaseGate(ctx.db))
        exchanges = asyncio.run(lookup_many(client, _jobs(target, 8)))
        failures.extend(str(e.error) for e in exchanges if not e.ok)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert recorder.total == 16
    assert recorder.most == 3


@pytest.mark.postgres
def test_reserved_starts_are_spaced_by_the_database_clock(ctx: ServiceContext,
                                                          service: IntegrationService) -> None:
    gate = _database_gate(ctx)
    key = _integration(service, "http://127.0.0.1:9/", max_requests_per_second=1)
    waits = [gate.reserve_start(key, 1.0) for _ in range(3)]
    assert waits[0] == 0.0
    # Each reservation is one second after the previous one (less the time the calls took).
    assert 0.5 < waits[1] <= 1.0 and 0.5 < waits[2] - waits[1] <= 1.0


@pytest.mark.postgres
def test_a_slot_of_a_vanished_holder_frees_when_it_expires(ctx: ServiceContext,
                                                           service: IntegrationService) -> None:
    gate = _database_gate(ctx)
    key = _integration(service, "http://127.0.0.1:9/", max_concurrent_requests=2)
    # A process that took both slots and died: nobody frees them before they expire.
    assert {gate.try_take_slot(key, 2, 0.3, "dead:1"), gate.try_take_slot(key, 2, 0.3,
                                                                          "dead:2")} == {0, 1}
    assert gate.try_take_slot(key, 2, 5.0, "alive") == -1
    deadline = time.monotonic() + 10
    taken = -1
    while taken == -1 and time.monotonic() < deadline:
        taken = gate.try_take_slot(key, 2, 5.0, "alive")
    assert taken in (0, 1)


@pytest.mark.postgres
def test_a_cancelled_wait_leaves_no_slot_taken(ctx: ServiceContext,
                                               service: IntegrationService) -> None:
    gate = _database_gate(ctx)
    key = _integration(service, "http://127.0.0.1:9/", max_concurrent_requests=1)
    cap = RateCap(key, 1)

    async def scenario() -> None:
        entered = asyncio.Event()
        release = asyncio.Event()

        async def holder() -> None:
            async with gate.admit(cap, 5.0):
                entered.set()
                await release.wait()

        first = asyncio.ensure_future(holder())
        await entered.wait()
        waiting = asyncio.ensure_future(_enter(gate, cap))
        await asyncio.sleep(0.05)
        waiting.cancel()
        release.set()
        await first
        await asyncio.wait_for(_enter(gate, cap), timeout=10)  # the slot is free

    asyncio.run(scenario())
    assert gate.try_take_slot(key, 1, 5.0, "check") == 0


async def _enter(gate: DatabaseGate, cap: RateCap) -> None:
    async with gate.admit(cap, 5.0):
        pass


@pytest.mark.postgres
def test_a_deleted_integration_is_admitted_without_a_cap(ctx: ServiceContext,
                                                         service: IntegrationService) -> None:
    gate = _database_gate(ctx)
    key = _integration(service, "http://127.0.0.1:9/", max_concurrent_requests=1)
    service.delete(SYSTEM, key)
    assert gate.try_take_slot(key, 1, 5.0, "h") is None
    assert gate.reserve_start(key, 1.0) == 0.0
    asyncio.run(asyncio.wait_for(_enter(gate, RateCap(key, 1, 1.0)), timeout=10))
