"""Failure messages a person can act on, one builder per ErrorKind.

Each builder says what failed, why when known, and what to do. Messages may name the host and
status but never carry secrets; the client still passes them through the target's Redactor.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from linker import safejson
from linker.contract import Severity, Violation
from linker.lookup.exchange import ErrorKind, ExchangeError
from linker.lookup.netguard import AddressRefused

MAX_LISTED_VIOLATIONS = 3
_HTML_TAGS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<h1", b"<p>")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or during, each once."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        pending.extend(a for a in current.args if isinstance(a, BaseException))


def _find(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def timeout_error(timeout_s: float, status: int | None = None) -> ExchangeError:
    """No (complete) answer within the target's timeout."""
    advice = ("the adaptor should answer in under 5 s; raise the timeout (max 15 s) or fix the "
              "adaptor")
    if status is None:
        return ExchangeError(ErrorKind.TIMEOUT, f"no answer within {timeout_s:.1f} s; {advice}")
    return ExchangeError(
        ErrorKind.TIMEOUT,
        f"the adaptor sent HTTP {status} but the body did not finish within {timeout_s:.1f} s; "
        f"{advice}",
    )


def _tls_error(exc: ssl.SSLError, url: str) -> ExchangeError:
    host = _host(url)
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return ExchangeError(
            ErrorKind.TLS,
            f"the TLS certificate of {host} was rejected ({reason}); the adaptor needs a "
            "certificate from a trusted authority that matches its host name",
        )
    reason = exc.reason or str(exc)
    hint = ("is the adaptor serving https on this port? use http:// if it serves plain HTTP"
            if "WRONG_VERSION" in str(reason).upper() else
            "check the adaptor's TLS setup (certificate, protocol versions, ciphers)")
    return ExchangeError(ErrorKind.TLS, f"the TLS handshake with {host} failed ({reason}); {hint}")


def _connect_error(exc: BaseException, url: str) -> ExchangeError:
    host = _host(url)
    if _find(exc, socket.gaierror) is not None:
        name = urlsplit(url).hostname or host
        return ExchangeError(
            ErrorKind.UNREACHABLE,
            f"could not resolve the host name {name!r} (DNS lookup failed); check the host in "
            "the adaptor URL",
        )
    if _find(exc, ConnectionRefusedError) is not None:
        return ExchangeError(
            ErrorKind.UNREACHABLE,
            f"connection to {host} was refused; is the adaptor running and listening on that "
            "port? check the URL's host and port",
        )
    if _find(exc, ConnectionResetError) is not None or isinstance(
        exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError
    ):
        return ExchangeError(
            ErrorKind.UNREACHABLE,
            f"the connection to {host} was closed before a complete answer ({_describe(exc)}); "
            "check the adaptor's logs for a crash, and any proxy or firewall in between",
        )
    return ExchangeError(
        ErrorKind.UNREACHABLE,
        f"could not reach {host} ({_describe(exc)}); check the URL and that the adaptor is "
        "reachable from this machine",
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exception_error(exc: BaseException, url: str, timeout_s: float,
                    status: int | None = None) -> ExchangeError:
    """The ExchangeError for an exception raised while calling the adaptor."""
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return timeout_error(timeout_s, status)
    refused = _find(exc, AddressRefused)
    if refused is not None:
        return ExchangeError(ErrorKind.UNREACHABLE, str(refused))
    tls = _find(exc, ssl.SSLError)
    if isinstance(tls, ssl.SSLError):
        return _tls_error(tls, url)
    if isinstance(exc, httpx.DecodingError):
        return ExchangeError(
            ErrorKind.INVALID_JSON,
            f"the response body could not be decoded ({_describe(exc)}); check the adaptor's "
            "Content-Encoding",
        )
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ExchangeError(ErrorKind.UNREACHABLE,
                             f"the adaptor URL cannot be called ({exc}); use an http(s) URL")
    if isinstance(exc, httpx.TransportError | OSError):
        return _connect_error(exc, url)
    return ExchangeError(
        ErrorKind.UNREACHABLE,
        f"the call to {_host(url)} failed before a complete answer ({_describe(exc)}); check "
        "the adaptor's logs",
    )


def redirect_error(status: int, location: str | None) -> ExchangeError:
    """A 3xx answer: lookups are not redirected, the final URL must be configured."""
    where = f"to {location}" if location else "without a Location header"
    return ExchangeError(
        ErrorKind.REDIRECT,
        f"the adaptor answered HTTP {status}, redirecting {where}; lookups do not follow "
        "redirects: configure the final URL"
        + (f" ({location})" if location else "") + " in the integration",
    )


def _error_detail(body: bytes) -> str | None:
    """The first ``errors[].detail`` (or ``message``) of a JSON error body, if any."""
    try:
        payload: Any = safejson.loads(body)
    except ValueError:
        return None
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            detail = errors[0].get("detail") or errors[0].get("message")
            return str(detail) if detail else None
        for key in ("detail", "message", "error"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
    return None


def status_error(status: int, body: bytes) -> ExchangeError:
    """A non-2xx answer; 401/403 point at the credentials and signing key."""
    detail = _error_detail(body)
    said = f" saying {detail!r}" if detail else ""
    if status in (401, 403):
        return ExchangeError(
            ErrorKind.HTTP_STATUS,
            f"the adaptor refused the request with HTTP {status}{said}; check that the "
            "username/password and signing key configured for this integration match the "
            "adaptor's",
        )
    if status >= 500:
        advice = "the adaptor failed; check its logs"
    else:
        advice = "a lookup must be answered with HTTP 200; check the adaptor's logs"
    return ExchangeError(ErrorKind.HTTP_STATUS, f"the adaptor answered HTTP {status}{said}; "
                         f"{advice}")


def too_large_error(limit: int) -> ExchangeError:
    """The body went past the read cap."""
    return ExchangeError(
        ErrorKind.TOO_LARGE,
        f"the response body is larger than {_size(limit)}; reading stopped there; return fewer "
        "or smaller results (e.g. fewer transactions, smaller images)",
    )


def _size(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n} bytes"


def looks_like_html(body: bytes, content_type: str) -> bool:
    """True when a body or its content type says HTML."""
    head = body[:1024].lstrip().lower()
    return "html" in content_type.lower() or (
        head.startswith(b"<") and any(tag in head for tag in _HTML_TAGS)
    )


def invalid_json_error(body: bytes, content_type: str, problem: str) -> ExchangeError:
    """The body is not JSON; says so when it looks like an HTML page."""
    if not body.strip():
        return ExchangeError(
            ErrorKind.INVALID_JSON,
            'the adaptor answered with an empty body; send {"results": []} when nothing matches',
        )
    if looks_like_html(body, content_type):
        return ExchangeError(
            ErrorKind.INVALID_JSON,
            "the adaptor answered with an HTML page, not JSON (often an error page from a web "
            "server or proxy); make the adaptor answer with application/json",
        )
    return ExchangeError(
        ErrorKind.INVALID_JSON,
        f"the response body is not valid JSON ({problem}); fix the adaptor's serialisation",
    )


def content_type_warning(content_type: str) -> Violation:
    """JSON served under another content type: accepted, with a warning."""
    shown = content_type or "none"
    return Violation(
        "$",
        f"the body is JSON but the content type is {shown!r}; send Content-Type: "
        "application/json",
        Severity.WARNING,
    )


def contract_error(violations: Sequence[Violation]) -> ExchangeError:
    """Error-severity violations, the first few listed with their paths."""
    errors = [v for v in violations if v.severity is Severity.ERROR]
    listed = "; ".join(f"{v.path}: {v.message}" for v in errors[:MAX_LISTED_VIOLATIONS])
    more = len(errors) - MAX_LISTED_VIOLATIONS
    suffix = f"; and {more} more" if more > 0 else ""
    noun = "violation" if len(errors) == 1 else "violations"
    return ExchangeError(
        ErrorKind.CONTRACT,
        f"the response breaks the lookup contract ({len(errors)} {noun}): {listed}{suffix}; "
        "fix the adaptor's response",
    )


def too_deep_error(limit: int) -> ExchangeError:
    """The body is JSON nested deeper than Linker reads."""
    return ExchangeError(
        ErrorKind.INVALID_JSON,
        f"the response body nests JSON deeper than {limit} levels; a lookup answer needs only "
        "a few levels: fix the adaptor's serialisation",
    )


def unexpected_error(exc: BaseException) -> ExchangeError:
    """The answer could not be checked at all (a bug or a hostile body Linker did not expect)."""
    return ExchangeError(
        ErrorKind.CONTRACT,
        f"Linker could not check the response ({type(exc).__name__}); the answer was not used; "
        "report this with the exchange to the Linker team and check the adaptor's response",
    )
