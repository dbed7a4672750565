"""Which addresses lookups may connect to, checked after DNS resolution, at connect time.

An adaptor URL is only a name: what it resolves to decides where a lookup goes. The guard
resolves the host itself, refuses the connection when ANY address is loopback, private,
link-local (cloud metadata included), unspecified, multicast or otherwise not public, and
then connects to the address it checked (so a second, different DNS answer cannot slip in).
Nothing is sent before the check.

Development and tests allow networks explicitly: ``LINKER_ALLOW_NETWORKS`` holds a
comma-separated list of networks (e.g. ``127.0.0.0/8,::1``) that are allowed even so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import httpcore
import httpx
from httpcore._utils import is_socket_readable  # the check httpcore itself makes

ALLOW_ENV = "LINKER_ALLOW_NETWORKS"
LOOPBACK_NETWORKS = "127.0.0.0/8,::1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

_METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254",
                                               "100.100.100.200", "169.254.170.2")}


class AddressRefused(httpcore.ConnectError):
    """A lookup's host resolved to an address lookups may not reach; nothing was sent."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the operating system's resolver)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``127.0.0.0/8, ::1`` as networks; ValueError names the entry that is not one."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{ALLOW_ENV}: {entry!r} is not an IP network such as 127.0.0.0/8 "
                             "or ::1") from None
    return tuple(networks)


def _kind(address: IPAddress) -> str | None:
    """What makes an address off-limits, or None when it is a public address."""
    if address in _METADATA:
        return "a cloud metadata address"
    checks = (("loopback", address.is_loopback), ("link-local", address.is_link_local),
              ("unspecified", address.is_unspecified), ("multicast", address.is_multicast),
              ("private", address.is_private))
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    return None if address.is_global else "a reserved (not public) address"


def is_ip_literal(host: str) -> bool:
    """True when ``host`` is an IP address (a zone suffix allowed), not a name to resolve."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class NetworkPolicy:
    """Which resolved addresses lookups may connect to."""

    allowed: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NetworkPolicy:
        """The policy ``LINKER_ALLOW_NETWORKS`` describes (public addresses only when unset)."""
        source = os.environ if env is None else env
        return cls(parse_networks(source.get(ALLOW_ENV, "")))

    @classmethod
    def allowing(cls, networks: str, resolver: Resolver = system_resolver) -> NetworkPolicy:
        """A policy allowing ``networks`` (e.g. ``LOOPBACK_NETWORKS``) besides public ones."""
        return cls(parse_networks(networks), resolver)

    def refusal(self, host: str, text: str) -> str | None:
        """Why ``host``'s resolved address ``text`` may not be reached, or None."""
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        kind = _kind(address)
        if kind is None or any(address in network for network in self.allowed):
            return None
        shown = host if host == text else f"{host} ({text})"
        return (f"lookups to {shown} are refused: it is {kind}; adaptors must be on public "
                f"addresses. For development allow it explicitly, e.g. {ALLOW_ENV}="
                f"{LOOPBACK_NETWORKS}")

    async def addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses of ``host``; AddressRefused when any of them is off-limits."""
        if is_ip_literal(host):
            found = [host]
        else:
            try:
                found = await self.resolver(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(str(exc)) from exc
        if not found:
            raise httpcore.ConnectError(str(socket.gaierror(socket.EAI_NONAME, host)))
        for text in found:
            problem = self.refusal(host, text)
            if problem is not None:
                raise AddressRefused(problem)
        return found


class SocketCachingStream(httpcore.AsyncNetworkStream):
    """An httpcore stream that answers ``is_readable`` from its raw socket, looked up once.

    httpcore asks every idle pooled connection ``is_readable`` before each request; the anyio
    stream answers by rebuilding its attribute table (a ``getpeername`` call included) every
    time, which was about a sixth of the event loop's CPU in the backfill (py-spy). All else is
    delegated.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Delegated."""
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Delegated."""
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        """Delegated."""
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        """The TLS stream, wrapped the same way."""
        return SocketCachingStream(await self._inner.start_tls(ssl_context, server_hostname,
                                                               timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        """``is_readable`` from the cached socket (httpcore's own check); the rest delegated."""
        if info == "is_readable" and self._socket is not None:
            return is_socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that resolves and checks every address before connecting."""

    def __init__(self, policy: NetworkPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy = policy
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first checked address that answers (TLS still checks the name)."""
        last: Exception | None = None
        for address in await self._policy.addresses(host, port):
            try:
                return SocketCachingStream(await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address,
                    socket_options=socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Unix sockets are never used for lookups."""
        raise AddressRefused(f"lookups do not use Unix sockets ({path!r})")

    async def sleep(self, seconds: float) -> None:
        """Delegated to the wrapped backend."""
        await self._inner.sleep(seconds)


def guarded_transport(policy: NetworkPolicy, *, verify: typing.Any, limits: httpx.Limits,
                      inner: httpcore.AsyncNetworkBackend | None = None
                      ) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through ``policy``."""
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
    pool = transport._pool
    # httpx has no public hook for the network backend; its pool (httpcore) does.
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    pool._network_backend = GuardedBackend(policy, inner or pool._network_backend)
    return transport
