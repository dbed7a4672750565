"""An httpx transport that sends lookups with aiohttp (C HTTP parser, native asyncio pool).

httpcore's pool checks every idle connection (a ``poll`` each) on every request and parses with
h11 in pure Python over anyio: most of a lookup's CPU in the backfill (docs/benchmarks.md).
This transport keeps httpx's client API (requests, responses, exceptions, gzip decoding by
httpx) and hands the wire to an ``aiohttp.ClientSession``: no redirects, no proxies or .netrc,
no cookies, bodies passed through undecoded. Every address passes the ``NetworkPolicy``
before a connection is made: names in the resolver, IP literals (which aiohttp does not
resolve) before the request. aiohttp exceptions become httpx ones, raised from the original.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import SocketFactoryType

from linker.lookup.netguard import ConnectFailed, NetworkPolicy, is_ip_literal

KEEPALIVE_S = 5.0
"""How long an idle connection is kept (httpx's default)."""

AUTO_HEADERS = ("User-Agent", "Accept-Encoding", "Accept", "Content-Type")
"""Headers aiohttp would add of its own when a request lacks them: it is told to skip them
(a lookup always sends all four; skipping costs aiohttp a header copy per request)."""
_AUTO_NAMES = frozenset(name.lower() for name in AUTO_HEADERS)


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver hook: the policy's checked addresses, AddressRefused otherwise."""

    def __init__(self, policy: NetworkPolicy) -> None:
        self._policy = policy

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        """Every checked address of ``host`` (the connector connects to these only)."""
        return [
            ResolveResult(hostname=host, host=address, port=port,
                          family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                          proto=0, flags=socket.AI_NUMERICHOST)
            for address in await self._policy.addresses(host, port)
        ]

    async def close(self) -> None:
        """Nothing to release."""


class _Body(httpx.AsyncByteStream):
    """An aiohttp response body as httpx reads it; closing releases the connection."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except aiohttp.ClientError as exc:
            raise _httpx_error(exc) from _cause(exc)

    async def aclose(self) -> None:
        self._response.release()


def _cause(exc: BaseException) -> BaseException:
    """The OS or TLS error under an aiohttp connection error (what errors.py reads), or ``exc``.

    aiohttp's certificate error is itself an ``ssl.CertificateError`` without its attributes.
    """
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return exc.certificate_error
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error
    return exc


def _httpx_error(exc: BaseException) -> Exception:
    """The httpx exception for an aiohttp (or policy) one; the caller chains the original."""
    if isinstance(exc, httpx.HTTPError):
        return exc
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(str(exc))
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectFailed):
        return httpx.ConnectError(str(exc))
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.InvalidURL(str(exc))
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError
                  | aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(exc))
    return httpx.ReadError(str(exc))


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with one aiohttp session (made on first use, in the running loop)."""

    def __init__(self, policy: NetworkPolicy, ssl_context: ssl.SSLContext | bool = True,
                 socket_factory: SocketFactoryType | None = None) -> None:
        """``socket_factory`` (aiohttp's hook, for tests) makes the socket of each connect."""
        self._policy = policy
        self._ssl = ssl_context
        self._socket_factory = socket_factory
        self._allowed_literals: set[str] = set()  # IP-literal hosts the policy let through
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, ssl=self._ssl, resolver=GuardedResolver(self._policy),
            keepalive_timeout=KEEPALIVE_S, use_dns_cache=False, happy_eyeballs_delay=None,
            socket_factory=self._socket_factory)
        return aiohttp.ClientSession(
            connector=connector, auto_decompress=False, trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=None))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` (headers as built, body bytes) and return its streaming response."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol "
                                            f"'{url.scheme}://'.")
        if self._session is None:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        try:
            if url.host not in self._allowed_literals and is_ip_literal(url.host):
                await self._policy.addresses(url.host, url.port or 0)
                self._allowed_literals.add(url.host)
            headers, complete = _headers(request)
            response = await self._session.request(
                request.method, str(url), data=request.content, allow_redirects=False,
                headers=headers, skip_auto_headers=None if complete else AUTO_HEADERS,
                proxy=None, compress=None,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout.get("connect"),
                                              sock_read=timeout.get("read")))
        except (aiohttp.ClientError, ConnectFailed) as exc:
            raise _httpx_error(exc) from _cause(exc)
        return httpx.Response(
            response.status, headers=list(response.raw_headers), stream=_Body(response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase":
                        (response.reason or "").encode("latin-1", "replace")})

    async def aclose(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _headers(request: httpx.Request) -> tuple[list[tuple[str, str]], bool]:
    """The request's headers as aiohttp takes them, names as written (Host included), and
    whether they hold every one of ``AUTO_HEADERS`` (so aiohttp adds none of its own)."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
    names = {name.lower() for name, _ in headers}
    return headers, names >= _AUTO_NAMES
