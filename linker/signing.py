"""Request signing and verification for the lookup contract (Gladly-Authorization, HMAC-SHA256).

The algorithm is section 1.4 of the lookup contract: a canonical request (method, path, sorted
query, signed headers, the signed-header list, the body hash), hashed, salted with a date-derived
key and signed with HMAC-SHA256.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

from linker.core.errors import LinkerError

ALGORITHM = "hmac-sha256"
AUTHORIZATION_HEADER = "Gladly-Authorization"
TIME_HEADER = "Gladly-Time"
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
DEFAULT_MAX_SKEW = timedelta(minutes=5)

# Headers a client never signs: the transport sets or rewrites them, and the signature itself.
UNSIGNED_HEADERS = frozenset(
    {"host", "content-length", "user-agent", "accept-encoding", "connection",
     AUTHORIZATION_HEADER.lower()}
)


class SignatureError(LinkerError):
    """A request's signature is missing, malformed, stale or wrong; ``detail`` says which."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def format_time(moment: datetime) -> str:
    """Render a moment as a Gladly-Time value (UTC, ``YYYYMMDDTHHMMSSZ``)."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime:
    """Parse a Gladly-Time value; raises ValueError when it is not ``YYYYMMDDTHHMMSSZ``."""
    return datetime.strptime(value.strip(), TIME_FORMAT).replace(tzinfo=UTC)


def canonical_query(url: str) -> str:
    """The query line of the canonical request: keys sorted (stably), percent-encoded."""
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    pairs.sort(key=lambda pair: pair[0])
    return urlencode(pairs)


def signable_header_names(headers: Mapping[str, str]) -> list[str]:
    """Lower-cased, sorted names of every header a client signs (all but transport ones)."""
    return sorted({name.lower() for name in headers} - UNSIGNED_HEADERS)


def _lookup(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def canonical_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """Build the canonical request text that is hashed and signed."""
    header_lines = []
    for name in signed_headers:
        value = _lookup(headers, name)
        if value is None:
            raise SignatureError("missing", f"{name} header is missing")
        header_lines.append(f"{name.strip().lower()}:{value.strip()}")
    path = urlsplit(url).path or "/"
    return "\n".join(
        [
            method.upper(),
            path,
            canonical_query(url),
            *header_lines,
            "",
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )


def string_to_sign(gladly_time: str, canonical: str) -> str:
    """The string signed with the salted key: algorithm, time and canonical hash."""
    canonical_hash = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{gladly_time.strip()}\n{canonical_hash}"


def salted_key(signing_key: str, gladly_time: str) -> bytes:
    """HMAC of the date (first 8 chars of Gladly-Time) under the configured key; raw bytes."""
    return _salted_key(signing_key, gladly_time.strip()[:8])


@functools.lru_cache(maxsize=256)
def _salted_key(signing_key: str, day: str) -> bytes:
    """``salted_key`` of one key and day (the same for every request of that day)."""
    return hmac.new(signing_key.encode("utf-8"), day.encode("utf-8"), hashlib.sha256).digest()


def compute_signature(
    signing_key: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """Lower-case hex signature of a request over the given signed headers."""
    gladly_time = _lookup(headers, TIME_HEADER.lower())
    if gladly_time is None:
        raise SignatureError("missing", f"{TIME_HEADER} header is missing")
    canonical = canonical_request(method, url, headers, signed_headers, body)
    message = string_to_sign(gladly_time, canonical).encode("utf-8")
    return hmac.new(salted_key(signing_key, gladly_time), message, hashlib.sha256).hexdigest()


def authorization_header(
    signing_key: str, method: str, url: str, headers: Mapping[str, str], body: bytes
) -> str:
    """The Gladly-Authorization value for a request, signing every non-transport header."""
    return signed_authorization(signing_key, method, url, headers, body)[0]


def signed_authorization(
    signing_key: str, method: str, url: str, headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """``authorization_header``'s value and the signature in it (lower-case hex)."""
    signed = signable_header_names(headers)
    signature = compute_signature(signing_key, method, url, headers, signed, body)
    value = f"SigningAlgorithm={ALGORITHM}, SignedHeaders={';'.join(signed)}, Signature={signature}"
    return value, signature


@dataclass(frozen=True)
class ParsedAuthorization:
    """The three parts of a Gladly-Authorization header."""

    algorithm: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization:
    """Split a Gladly-Authorization header; raises SignatureError when malformed."""
    parts: dict[str, str] = {}
    for piece in value.split(","):
        key, sep, item = piece.strip().partition("=")
        if not sep:
            raise SignatureError("invalid", f"{AUTHORIZATION_HEADER} header is malformed")
        parts[key.strip()] = item.strip()
    try:
        algorithm = parts["SigningAlgorithm"]
        signed = tuple(h for h in parts["SignedHeaders"].split(";") if h)
        signature = parts["Signature"]
    except KeyError as missing:
        raise SignatureError(
            "invalid", f"{AUTHORIZATION_HEADER} header lacks {missing.args[0]}"
        ) from None
    return ParsedAuthorization(algorithm.lower(), signed, signature.lower())


def verify_request(
    signing_key: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> None:
    """Check a request's signature and freshness; raises SignatureError saying what is wrong.

    The signed-header list is taken from the request itself, so custom headers a client chose
    to sign are verified too. ``max_skew`` bounds the clock difference in both directions.
    """
    value = _lookup(headers, AUTHORIZATION_HEADER.lower())
    if value is None:
        raise SignatureError("missing", f"{AUTHORIZATION_HEADER} header is missing")
    parsed = parse_authorization(value)
    if parsed.algorithm != ALGORITHM:
        raise SignatureError("invalid", f"unsupported signing algorithm {parsed.algorithm!r}")
    if TIME_HEADER.lower() not in parsed.signed_headers:
        raise SignatureError("invalid", f"{TIME_HEADER} must be among the signed headers")
    if list(parsed.signed_headers) != sorted(parsed.signed_headers):
        raise SignatureError("invalid", "SignedHeaders must be sorted")
    gladly_time = _lookup(headers, TIME_HEADER.lower()) or ""
    try:
        sent_at = parse_time(gladly_time)
    except ValueError:
        raise SignatureError("invalid", f"{TIME_HEADER} is not YYYYMMDDTHHMMSSZ") from None
    expected = compute_signature(signing_key, method, url, headers, parsed.signed_headers, body)
    if not hmac.compare_digest(expected, parsed.signature):
        raise SignatureError("incorrect", "Signature is incorrect")
    current = now or datetime.now(UTC)
    if abs(current - sent_at) > max_skew:
        raise SignatureError("too_old", "Signature is too old")
