"""An adaptor URL's check, run when a target is built: the core rule plus the transport's parse."""

from __future__ import annotations

import httpx

from linker.core.integration_config import url_problem as form_problem


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an adaptor URL (a sentence saying what to fix), or None.

    The form rules are ``linker.core.integration_config.url_problem``; on top, httpx must be
    able to parse it (e.g. an IDNA host name).
    """
    problem = form_problem(url)
    if problem is not None:
        return problem
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"the adaptor URL {url!r} cannot be called ({exc}); fix the host or path"
    return None
