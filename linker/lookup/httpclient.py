"""The httpx client lookups are sent with: straight to the transport, none of httpx's extras.

``httpx.AsyncClient.send`` runs an auth flow, a redirect loop, event hooks and a cookie jar
for every response (the jar wraps each request and response in ``urllib`` objects: about a
twentieth of a backfill's CPU, docs/benchmarks.md). A lookup uses none of them: no client auth
(credentials are built into the headers, URL credentials are refused), no redirects followed,
no hooks, no cookies kept between adaptor calls. ``LookupHttpClient.send`` hands the request to
the transport as it is and keeps httpx's request log line; an explicit ``auth`` or redirect
following goes through httpx's own ``send``.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

_LOG = logging.getLogger("httpx")


class LookupHttpClient(httpx.AsyncClient):
    """An ``AsyncClient`` over one transport: no redirects, proxies, ``.netrc`` or cookie jar."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__(transport=transport, follow_redirects=False, trust_env=False)
        self._wire = transport

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send ``request`` unmodified to the transport; read the body unless ``stream``."""
        if auth is not httpx.USE_CLIENT_DEFAULT or follow_redirects is True:
            return await super().send(request, stream=stream, auth=auth,
                                      follow_redirects=follow_redirects)
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        if "timeout" not in request.extensions:
            request.extensions = {**request.extensions, "timeout": self.timeout.as_dict()}
        try:
            response = await self._wire.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request
            raise
        response.request = request
        _LOG.info('HTTP Request: %s %s "%s %d %s"', request.method, request.url,
                  response.http_version, response.status_code, response.reason_phrase)
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response
