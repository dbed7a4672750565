"""Where and how to call one adaptor: URL, credentials, custom headers, limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from linker.core.errors import LinkerError
from linker.core.integration_config import (
    DEFAULT_TIMEOUT_S,
    MAX_TIMEOUT_S,
    RESERVED_HEADERS,
    header_name_problem,
    header_value_problem,
    realm_problem,
    timeout_problem,
)
from linker.lookup.ratelimit import RateCap
from linker.lookup.urls import url_problem
from linker.redaction import ALWAYS_SECRET_HEADERS, Redactor

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_TIMEOUT_S", "MAX_TIMEOUT_S", "RESERVED_HEADERS",
           "AdaptorTarget", "InvalidTarget"]

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


class InvalidTarget(LinkerError, ValueError):
    """A target setting that cannot work (bad URL, header or timeout); the message says why."""


def _check(problem: str | None) -> None:
    if problem is not None:
        raise InvalidTarget(problem)


def _check_headers(headers: Mapping[str, str]) -> None:
    seen: list[str] = []
    for name, value in headers.items():
        _check(header_name_problem(name, seen))
        seen.append(name)
        _check(header_value_problem(name, value))


@dataclass(frozen=True)
class AdaptorTarget:
    """One adaptor to call, as an integration configures it.

    ``rate_cap`` makes ``LookupClient.lookup`` wait at its gate before sending.
    ``timeout_s`` must be positive and is clamped to 15 s (Gladly gives up after 15 s).
    ``secret_headers`` names custom headers whose values are secret (matched case-insensitively;
    ``X-API-Key`` and the other always-secret headers are secret anyway).
    Raises ``InvalidTarget`` for settings that cannot work.
    """

    url: str
    name: str = ""
    username: str = ""
    password: str = ""
    realm: str = ""
    signing_key: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    secret_headers: frozenset[str] = frozenset()
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    also_mask: tuple[str, ...] = ()
    """More secrets to mask in what this target's exchanges record: a variant of a target
    (e.g. conformance's deliberately wrong key) still masks the real one when an adaptor
    echoes it."""
    rate_cap: RateCap | None = None
    """The integration's caps on requests in flight and per second (None: no cap)."""

    def __post_init__(self) -> None:
        _check(url_problem(self.url))
        _check_headers(self.headers)
        _check(realm_problem(self.realm))
        _check(timeout_problem(self.timeout_s, positive_only=True))
        if self.max_body_bytes <= 0:
            raise InvalidTarget("max_body_bytes must be positive")
        object.__setattr__(self, "timeout_s", min(float(self.timeout_s), MAX_TIMEOUT_S))
        object.__setattr__(self, "headers", dict(self.headers))
        object.__setattr__(self, "secret_headers",
                           frozenset(h.lower() for h in self.secret_headers))

    def __hash__(self) -> int:
        return hash((self.url, self.name, self.username, self.password, self.realm,
                     self.signing_key, tuple(sorted(self.headers.items())), self.secret_headers,
                     self.timeout_s, self.max_body_bytes, self.also_mask, self.rate_cap))

    @property
    def has_basic_auth(self) -> bool:
        """True when a Basic Authorization header is sent (username or password set)."""
        return bool(self.username or self.password)

    def secret_header_values(self) -> dict[str, str]:
        """The custom headers whose values are secret, by name."""
        secret = self.secret_headers | ALWAYS_SECRET_HEADERS
        return {k: v for k, v in self.headers.items() if k.lower() in secret}

    def redactor(self) -> Redactor:
        """The Redactor masking this target's password, signing key, secret headers and
        ``also_mask``."""
        return Redactor.for_credentials(
            username=self.username,
            password=self.password,
            signing_key=self.signing_key,
            secret_header_values=self.secret_header_values(),
            also_mask=self.also_mask,
        )

    def __repr__(self) -> str:
        # Never print secrets in tracebacks or logs.
        return (f"AdaptorTarget(url={self.url!r}, name={self.name!r}, "
                f"timeout_s={self.timeout_s!r})")
