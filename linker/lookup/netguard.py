"""Which addresses lookups may connect to, checked after DNS resolution, at connect time.

An adaptor URL is only a name: what it resolves to decides where a lookup goes. The guard
resolves the host itself, refuses the connection when ANY address is loopback, private,
link-local (cloud metadata included), unspecified, multicast or otherwise not public, and
then connects to the address it checked (so a second, different DNS answer cannot slip in).
Nothing is sent before the check. ``linker.lookup.aiotransport`` applies the policy: its
resolver for names, a check before the request for IP literals.

Development and tests allow networks explicitly: ``LINKER_ALLOW_NETWORKS`` holds a
comma-separated list of networks (e.g. ``127.0.0.0/8,::1``) that are allowed even so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

ALLOW_ENV = "LINKER_ALLOW_NETWORKS"
LOOPBACK_NETWORKS = "127.0.0.0/8,::1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

_METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254",
                                               "100.100.100.200", "169.254.170.2")}


class ConnectFailed(Exception):
    """A lookup's host could not be connected to; nothing was sent."""


class AddressRefused(ConnectFailed):
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
                raise ConnectFailed(str(exc)) from exc
        if not found:
            raise ConnectFailed(str(socket.gaierror(socket.EAI_NONAME, host)))
        for text in found:
            problem = self.refusal(host, text)
            if problem is not None:
                raise AddressRefused(problem)
        return found
