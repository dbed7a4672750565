"""The one check of an adaptor URL's form, run when a target is built (so at validation)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx

_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an adaptor URL (a sentence saying what to fix), or None."""
    if not isinstance(url, str) or not url:
        return "the adaptor URL is empty; give an absolute http(s) URL, e.g. https://adaptor.example/"
    bad = _FORBIDDEN.search(url)
    if bad:
        return (f"the adaptor URL contains a space or control character (U+{ord(bad.group()):04X} "
                f"at position {bad.start() + 1}); remove it")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"the adaptor URL {url!r} cannot be read ({exc}); ports go from 1 to 65535"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"adaptor URL {url!r} must be an absolute http(s) URL, e.g. https://adaptor.example/"
    if parts.username is not None or parts.password is not None:
        return "put credentials in the username/password settings, not in the adaptor URL"
    if port == 0:
        return f"the adaptor URL {url!r} has port 0; ports go from 1 to 65535"
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"the adaptor URL {url!r} cannot be called ({exc}); fix the host or path"
    return None
