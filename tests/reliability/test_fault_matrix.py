"""The fault matrix: every adaptor failure x every trigger that calls adaptors today.

Each cell runs one flow with a healthy integration ("Healthy") and a faulty one ("Faulty") and
checks: no exception escapes, the faulty system's exchange is stored with the right error kind,
the healthy system still answers and is recorded, and nothing is half-done.

Answer faults come from the reference adaptor in-process; network faults are real (a closed
loopback port, https spoken to a plain-http loopback server) or refused before connecting
(names resolved by a patched resolver, so no traffic ever leaves loopback).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from linker.adaptor.app import create_app
from linker.adaptor.server import BackgroundServer
from linker.core.permissions import Actor, Role
from linker.lookup import LookupClient
from linker.lookup.aiotransport import AiohttpTransport
from linker.lookup.netguard import NetworkPolicy
from linker.services.backfill import BackfillService
from linker.services.conformance import ConformanceService
from linker.services.customers import CustomerService
from linker.services.integrations import IntegrationService
from linker.services.linking import LinkingService
from linker.services.profile import ProfileService
from linker.services.refresh import RefreshService
from linker.services.replay import ReplayService
from linker.store.models import AutolinkOutcome, Customer, Integration, PulledData
from tests.integration.world import AGENT, World, link_manually, unique_record

ADMIN = Actor("root", Role.ADMIN)
HOSTILE_TIMEOUT_S = 0.5
NETWORK_TIMEOUT_S = 5.0
"""Network faults fail at once (refused, unresolvable, refused by policy, TLS): a roomy deadline
keeps a loaded machine's client setup (SSL context, inside the deadline) from turning them into
timeouts, as happened twice to ``refused-conformance`` with 0.5 s."""


@dataclass(frozen=True)
class Fault:
    """One way an adaptor fails: reference-adaptor faults or a URL, and the error kind."""

    faults: tuple[str, ...] = ()
    kind: str | None = None  # None: the answer is usable (possibly with warnings)
    url: str | None = None   # a network fault: the faulty integration's URL
    detailed_kind: str | None = "same"  # the kind for DETAILED lookups when it differs


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def plain_http_server() -> Iterator[str]:
    with BackgroundServer(create_app("shop")) as server:
        yield server.url


def faults(plain_http_url: str) -> dict[str, Fault]:
    tls_url = plain_http_url.replace("http://", "https://") + "lookup"
    return {
        "timeout": Fault(("hang",), "timeout"),
        # one byte per 100 ms: every read is quick, only the overall deadline ends it
        "slow-drip": Fault(("slow-drip:100",), "timeout"),
        "refused": Fault(kind="unreachable", url=f"http://127.0.0.1:{_closed_port()}/lookup"),
        "unknown-host": Fault(kind="unreachable", url="http://unknown.matrix/lookup"),
        "off-limits-address": Fault(kind="unreachable", url="https://private.matrix/lookup"),
        "tls-failure": Fault(kind="tls", url=tls_url),
        **{f"status-{c}": Fault((f"status:{c}",), "http_status")
           for c in (400, 401, 403, 404, 429, 500, 502, 503)},
        "redirect": Fault(("redirect",), "redirect"),
        "invalid-json": Fault(("malformed-json",), "invalid_json"),
        "html-page": Fault(("html-error",), "invalid_json"),
        "json-as-html": Fault(("json-as-html",), None),
        "over-the-cap": Fault(("oversize:2100",), "too_large"),
        "deep-json-490": Fault(("deep-json:490",), "invalid_json"),
        "deep-json-100000": Fault(("deep-json:100000",), "invalid_json"),
        "nul-byte": Fault(("nul-byte",), "invalid_json"),
        "nul-fields": Fault(("nul-fields",), None),
        "non-utf8": Fault(("non-utf8",), "invalid_json"),
        "missing-id": Fault(("missing-id",), "contract"),
        "nested-attributes": Fault(("nested-attributes",), None),
        "numeric-values": Fault(("numeric-values",), None),
        # a DETAILED answer must hold exactly the one record asked for
        "duplicate-results": Fault(("duplicate-results",), None, detailed_kind="contract"),
        "terminal-escapes": Fault(("terminal-escapes",), None),
    }


FAULT_NAMES = list(faults("http://127.0.0.1:1/"))


async def _resolve(host: str, port: int) -> list[str]:
    """The matrix's resolver: loopback as usual, two names that must never be connected to."""
    if host == "unknown.matrix":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    if host == "private.matrix":
        return ["10.0.0.1"]
    return ["127.0.0.1"]


class Routing(httpx.AsyncBaseTransport):
    """``*.test`` hosts to the in-process adaptors, every other host to the guarded network."""

    def __init__(self, asgi: httpx.AsyncBaseTransport) -> None:
        policy = NetworkPolicy.allowing("127.0.0.0/8", resolver=_resolve)
        self._asgi = asgi
        self._network = AiohttpTransport(policy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith(".test"):
            return await self._asgi.handle_async_request(request)
        return await self._network.handle_async_request(request)

    async def aclose(self) -> None:
        await self._network.aclose()


class MatrixClient(LookupClient):
    def __init__(self, world: World) -> None:
        super().__init__()
        self._router = world.router

    def http_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=Routing(httpx.ASGITransport(app=self._router)),
                                 follow_redirects=False, trust_env=False)


@dataclass
class Cell:
    world: World
    healthy: int
    faulty: int
    email: str
    external_id: str
    network_fault: bool
    since: int = 0  # exchanges up to this id were setup, not the flow under test
    first_only: bool = False  # only the flow's first exchange shows the fault (conformance)

    def exchanges(self, integration_id: int, trigger: str | None = None) -> list[str | None]:
        return [e.error_kind for e in sorted(self.world.exchanges(), key=lambda e: e.id)
                if e.integration_id == integration_id and e.id > self.since and (trigger is None or
                                                            e.trigger == trigger)]


def _cell(world: World, fault: Fault) -> Cell:
    world.ctx.client = MatrixClient(world)
    person = unique_record()
    healthy = world.add_integration("Healthy", "shop", autolink_fields=["email"])
    faulty = world.add_integration("Faulty", "shop", faults=fault.faults,
                                   autolink_fields=["email"],
                                   timeout_s=HOSTILE_TIMEOUT_S if fault.url is None
                                   else NETWORK_TIMEOUT_S)
    if fault.url is not None:
        with world.ctx.db.session() as s:
            integration = s.get(Integration, faulty)
            assert integration is not None
            integration.url = fault.url
    return Cell(world, healthy, faulty, person.emails[0], person.external_customer_id,
                fault.url is not None)


def _outcomes(world: World, customer_id: str) -> set[int]:
    with world.ctx.db.session(readonly=True) as s:
        return set(s.scalars(select(AutolinkOutcome.integration_id)
                             .where(AutolinkOutcome.customer_id == customer_id)))


def _data(pulled: PulledData | None) -> object:
    if pulled is None or pulled.fetched_at is None:
        return None  # no data (a failed first refresh leaves only its error)
    return (pulled.name, pulled.address, pulled.custom_attributes, pulled.transactions,
            pulled.fetched_at)


def trigger_create(cell: Cell) -> tuple[bool, str]:
    created = CustomerService(cell.world.ctx).create(ADMIN, "Hostile Test", [cell.email])
    customer_id = created.customer.id
    assert _outcomes(cell.world, customer_id) == {cell.healthy, cell.faulty}
    return True, "autolink"


def trigger_open(cell: Cell) -> tuple[bool, str]:
    customer_id = cell.world.add_customer("Hostile Test", [cell.email])
    ProfileService(cell.world.ctx).open(AGENT, customer_id)
    assert _outcomes(cell.world, customer_id) == {cell.healthy, cell.faulty}
    return True, "autolink"


def trigger_search_one(cell: Cell) -> tuple[bool, str]:
    customer_id = cell.world.add_customer("Hostile Test", [cell.email])
    LinkingService(cell.world.ctx).search(AGENT, customer_id, integration_ids=[cell.faulty],
                                          fields={"email": cell.email})
    return False, "search"


def trigger_search_all(cell: Cell) -> tuple[bool, str]:
    customer_id = cell.world.add_customer("Hostile Test", [cell.email])
    outcome = LinkingService(cell.world.ctx).search(AGENT, customer_id, integration_ids=None,
                                                    fields={"email": cell.email})
    assert any("Healthy" in row.system_names for row in outcome.rows)
    return True, "search"


def trigger_refresh(cell: Cell) -> tuple[bool, str]:
    world = cell.world
    customer_id = world.add_customer("Hostile Test", [cell.email])
    for integration in (cell.healthy, cell.faulty):
        link_manually(world, customer_id, integration, cell.external_id)
    good = None
    if not cell.network_fault:  # first pull good data, then break the adaptor
        faulty_faults = world.router.apps.pop("faulty.test")
        world.serve("Faulty", "shop")
        RefreshService(world.ctx).refresh(AGENT, customer_id, cell.faulty)
        good = world.pulled(customer_id, cell.faulty)
        assert good is not None
        world.router.apps["faulty.test"] = faulty_faults
        cell.since = max(e.id for e in world.exchanges())
    outcomes = RefreshService(world.ctx).refresh(AGENT, customer_id)
    by_id = {o.integration_id: o for o in outcomes}
    assert by_id[cell.healthy].status == "refreshed"
    after = world.pulled(customer_id, cell.faulty)
    if by_id[cell.faulty].status == "failed":
        assert _data(after) == _data(good)
    return True, "detailed"


def trigger_link(cell: Cell) -> tuple[bool, str]:
    customer_id = cell.world.add_customer("Hostile Test", [cell.email])
    outcome = LinkingService(cell.world.ctx).link(AGENT, customer_id, cell.faulty,
                                                  cell.external_id)
    assert outcome.refresh is not None
    assert [link.integration_id for link in cell.world.links(customer_id)] == [cell.faulty]
    return False, "detailed"


def trigger_test_connection(cell: Cell) -> tuple[bool, str]:
    IntegrationService(cell.world.ctx).test_connection(ADMIN, cell.faulty, email=cell.email)
    return False, "test"


def trigger_backfill(cell: Cell) -> tuple[bool, str]:
    world = cell.world
    customer_id = world.add_customer("Hostile Test", [cell.email])
    for _ in range(2):  # a re-run must work too
        BackfillService(world.ctx).run(ADMIN, concurrency=4)
    assert cell.faulty in _outcomes(world, customer_id)
    return True, "backfill"


def _with_good_adaptor(cell: Cell, action: Callable[[], object]) -> None:
    """Run ``action`` while the faulty system answers well (answer faults only; a network
    fault stays), then put the fault back."""
    world = cell.world
    if cell.network_fault:
        action()
        return
    faulty_app = world.router.apps.pop("faulty.test")
    world.serve("Faulty", "shop")
    try:
        action()
    finally:
        world.router.apps["faulty.test"] = faulty_app


def trigger_conformance(cell: Cell) -> tuple[bool, str]:
    card = ConformanceService(cell.world.ctx).run(ADMIN, cell.faulty, cell.email)
    # Its later checks send deliberately wrong requests; the first is the known-email search.
    cell.first_only = True
    first = cell.exchanges(cell.faulty, "conformance")[0]
    if first is not None:  # what failed is on the card
        assert not card.passed
        failed = [c for c in card.checks if c.status == "fail"]
        assert failed and all(c.message for c in failed)
    return False, "conformance"


def trigger_replay(cell: Cell) -> tuple[bool, str]:
    world = cell.world
    customer_id = world.add_customer("Hostile Test", [cell.email])
    linking = LinkingService(world.ctx)
    _with_good_adaptor(cell, lambda: linking.search(
        AGENT, customer_id, integration_ids=[cell.faulty], fields={"email": cell.email}))
    original = max(e.id for e in world.exchanges() if e.integration_id == cell.faulty)
    cell.since = max(e.id for e in world.exchanges())
    result = ReplayService(world.ctx).replay(ADMIN, original)
    assert result.original.id == original and result.replay.id > original
    replayed = result.replay.error.kind.value if result.replay.error else None
    assert [replayed] == cell.exchanges(cell.faulty, "replay")
    return False, "replay"


TRIGGERS: dict[str, Callable[[Cell], tuple[bool, str]]] = {
    "create": trigger_create, "open": trigger_open, "search-one": trigger_search_one,
    "search-all": trigger_search_all, "refresh": trigger_refresh, "link": trigger_link,
    "test-connection": trigger_test_connection, "backfill": trigger_backfill,
    "conformance": trigger_conformance, "replay": trigger_replay,
}


@pytest.mark.parametrize("trigger", list(TRIGGERS))
@pytest.mark.parametrize("fault_name", FAULT_NAMES)
def test_fault_matrix_cell(world: World, plain_http_server: str, fault_name: str,
                           trigger: str) -> None:
    fault = faults(plain_http_server)[fault_name]
    cell = _cell(world, fault)
    fans_out, exchange_trigger = TRIGGERS[trigger](cell)  # must not raise
    faulty_kinds = cell.exchanges(cell.faulty, exchange_trigger)
    assert faulty_kinds, "the faulty system's exchange was not stored"
    if cell.first_only:
        faulty_kinds = faulty_kinds[:1]
    expected = fault.kind
    if exchange_trigger == "detailed" and fault.detailed_kind != "same":
        expected = fault.detailed_kind
    assert set(faulty_kinds) == {expected}, faulty_kinds
    if fans_out:
        healthy_kinds = cell.exchanges(cell.healthy, exchange_trigger)
        assert healthy_kinds and set(healthy_kinds) == {None}, healthy_kinds
    with world.ctx.db.session(readonly=True) as s:
        for customer in s.scalars(select(Customer)):
            assert "\x00" not in customer.name
        for pulled in s.scalars(select(PulledData)):
            assert "\x00" not in str(_data(pulled))
