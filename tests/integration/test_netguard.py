"""Connect-time address checks: refusals happen after resolution and before any connect;
only loopback traffic is ever sent (other addresses come from a patched resolver)."""

from __future__ import annotations

import asyncio
import socket
import typing

import pytest
from aiohappyeyeballs import AddrInfoType

from linker.adaptor.app import create_app
from linker.adaptor.server import BackgroundServer
from linker.contract import search_request
from linker.lookup import AdaptorTarget, ErrorKind, Exchange, InvalidTarget, LookupClient
from linker.lookup.aiotransport import AiohttpTransport
from linker.lookup.netguard import LOOPBACK_NETWORKS, NetworkPolicy, parse_networks

REQUEST = search_request("cust-1", {"email": "martha@example.com"})


class RecordingSockets:
    """aiohttp's socket factory: records each address connected to and refuses it, so no
    traffic leaves the test."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    def __call__(self, addr_info: AddrInfoType) -> socket.socket:
        host, port = addr_info[4][:2]
        self.connects.append((str(host), int(port)))
        raise ConnectionRefusedError("the test never connects")


def resolving_to(*addresses: str) -> typing.Any:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)
    return resolve


def _lookup(policy: NetworkPolicy, url: str, backend: RecordingSockets | None = None
            ) -> Exchange:
    transport = None
    if backend is not None:
        transport = AiohttpTransport(policy, socket_factory=backend)
    client = LookupClient(transport=transport, network=policy)
    return client.lookup_sync(AdaptorTarget(url, timeout_s=5), REQUEST)


@pytest.mark.parametrize("address,kind", [
    ("10.0.0.1", "private"), ("192.168.1.5", "private"), ("172.16.0.9", "private"),
    ("169.254.169.254", "metadata"), ("169.254.10.10", "link-local"), ("fe80::1", "link-local"),
    ("fd00:ec2::254", "metadata"), ("127.0.0.1", "loopback"), ("::1", "loopback"),
    ("::ffff:10.0.0.1", "private"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
    ("100.64.0.1", "reserved"),
])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_names_resolving_to_off_limits_addresses_are_refused_before_connecting(
        address: str, kind: str, scheme: str) -> None:
    backend = RecordingSockets()
    policy = NetworkPolicy(resolver=resolving_to(address))
    exchange = _lookup(policy, f"{scheme}://adaptor.localtest/lookup", backend)
    assert exchange.error is not None
    assert exchange.error.kind is ErrorKind.UNREACHABLE
    assert "refused" in exchange.error.message and kind in exchange.error.message
    assert "LINKER_ALLOW_NETWORKS" in exchange.error.message
    assert backend.connects == []


def test_one_off_limits_address_among_public_ones_refuses_the_host() -> None:
    backend = RecordingSockets()
    policy = NetworkPolicy(resolver=resolving_to("93.184.216.34", "10.0.0.1"))
    exchange = _lookup(policy, "https://adaptor.localtest/", backend)
    assert exchange.error is not None and "10.0.0.1" in exchange.error.message
    assert backend.connects == []


def test_public_addresses_are_connected_to_as_checked() -> None:
    backend = RecordingSockets()  # refuses every connect, so nothing is sent anywhere
    policy = NetworkPolicy(resolver=resolving_to("93.184.216.34"))
    exchange = _lookup(policy, "https://adaptor.localtest:8443/", backend)
    assert backend.connects == [("93.184.216.34", 8443)]
    assert exchange.error is not None and exchange.error.kind is ErrorKind.UNREACHABLE


def test_ip_literal_urls_are_checked_without_resolving() -> None:
    async def never(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal is not resolved")
    backend = RecordingSockets()
    exchange = _lookup(NetworkPolicy(resolver=never), "http://169.254.169.254/latest", backend)
    assert exchange.error is not None and "metadata" in exchange.error.message
    assert backend.connects == []


def test_loopback_adaptor_is_refused_by_default_and_reached_when_allowed() -> None:
    with BackgroundServer(create_app("shop")) as server:
        url = server.url + "lookup"
        refused = _lookup(NetworkPolicy(), url)
        assert refused.error is not None and "loopback" in refused.error.message
        assert refused.response is None
        allowed = _lookup(NetworkPolicy.allowing(LOOPBACK_NETWORKS), url)
        assert allowed.ok, allowed.error


def test_a_name_is_connected_to_at_the_address_it_was_checked_at() -> None:
    with BackgroundServer(create_app("shop")) as server:
        port = server.url.rstrip("/").rsplit(":", 1)[1]
        policy = NetworkPolicy.allowing("127.0.0.0/8", resolver=resolving_to("127.0.0.1"))
        exchange = _lookup(policy, f"http://adaptor.localtest:{port}/lookup")
        assert exchange.ok, exchange.error
        assert exchange.request.headers["Host"] == f"adaptor.localtest:{port}"


def test_environment_setting_is_parsed_and_bad_entries_named() -> None:
    policy = NetworkPolicy.from_env({"LINKER_ALLOW_NETWORKS": " 127.0.0.0/8 , ::1 ,"})
    assert [str(n) for n in policy.allowed] == ["127.0.0.0/8", "::1/128"]
    assert NetworkPolicy.from_env({}).allowed == ()
    with pytest.raises(ValueError, match="'localhost' is not an IP network"):
        parse_networks("127.0.0.1,localhost")


@pytest.mark.parametrize("url,says", [
    ("http://adaptor.example:99999/", "ports go from 1 to 65535"),
    ("http://adaptor.example:0/", "port 0"),
    ("http://adaptor.example/a\r\nX-Injected: 1", "U+000D"),
    ("http://adaptor.example/\nx", "U+000A"),
    ("http://adaptor.example/\x00", "U+0000"),
    ("ftp://adaptor.example/", "http(s)"),
    ("file:///etc/passwd", "http(s)"),
    ("gopher://adaptor.example/", "http(s)"),
    ("http://adaptor.example:port/", "ports go from 1 to 65535"),
])
def test_urls_that_cannot_work_are_refused_at_validation(url: str, says: str) -> None:
    with pytest.raises(InvalidTarget) as caught:
        AdaptorTarget(url)
    assert says in str(caught.value)


def test_a_transport_refuses_an_ip_literal_on_every_request() -> None:
    """IP literals the policy allowed are remembered per transport; refused ones never are."""
    backend = RecordingSockets()
    client = LookupClient(transport=AiohttpTransport(NetworkPolicy(), socket_factory=backend))
    target = AdaptorTarget("http://10.0.0.1/lookup", timeout_s=5)

    async def twice() -> list[Exchange]:
        async with client.http_client() as http:
            return [await client.lookup(target, REQUEST, client=http) for _ in range(2)]

    for exchange in asyncio.run(twice()):
        assert exchange.error is not None and "private" in exchange.error.message
    assert backend.connects == []
