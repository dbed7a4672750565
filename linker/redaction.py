"""The one place secrets are masked before anything is stored, printed or shown.

A ``Redactor`` knows the secret values of one integration (password, signing key, secret
header values, the Basic credential built from them) and the names of headers that always
carry secrets. Every string and header map that leaves the lookup client passes through it.

Each secret is matched as written and in the forms an adaptor may echo it back in: JSON-escaped
(ASCII and non-ASCII), Go-escaped (``\\u0026``), URL-encoded and base64. All forms of all
secrets of one integration are compiled into ONE pattern (cached), applied once per text.
Secrets shorter than 3 characters are masked only where they stand alone (not inside a longer
run of letters and digits), so a 2-character password does not mask every word holding it.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from linker.safejson import map_strings

MASK = "****"

# Headers whose values are secret whatever the integration says.
ALWAYS_SECRET_HEADERS = frozenset({"authorization", "gladly-authorization", "proxy-authorization",
                                   "cookie", "set-cookie", "x-api-key"})

_SIGNATURE = re.compile(r"(Signature=)[0-9a-fA-F]+")
_SIGNATURE_AND_USERINFO = r"(?P<sig>Signature=)[0-9a-fA-F]+|(?P<url>://)[^/@\s]+@"
_USERINFO = re.compile(r"://[^/@\s]+@")
# Secrets this short are masked only where they stand alone.
_MIN_SECRET_LEN = 3
_GO_ESCAPES = {"&": "\\u0026", "<": "\\u003c", ">": "\\u003e"}


def basic_credential(username: str, password: str) -> str:
    """The base64 token of a Basic Authorization header."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _b64_forms(raw: bytes) -> set[str]:
    std = base64.b64encode(raw).decode("ascii")
    url = base64.urlsafe_b64encode(raw).decode("ascii")
    return {std, std.rstrip("="), url, url.rstrip("=")}


def _go_escaped(text: str) -> str:
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text


def secret_forms(secret: str) -> set[str]:
    """The texts ``secret`` may appear as: raw, JSON- and Go-escaped, URL-encoded, base64."""
    forms = {secret}
    for ascii_only in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms |= {escaped, _go_escaped(escaped), escaped.replace("/", "\\/")}
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        forms |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)}
    forms |= _b64_forms(secret.encode())  # a short secret's too: masked where it stands alone
    return {form for form in forms if form}


def _alternative(form: str, standalone: bool) -> str:
    escaped = re.escape(form)
    return rf"(?<![0-9A-Za-z]){escaped}(?![0-9A-Za-z])" if standalone else escaped


@functools.lru_cache(maxsize=512)
def _pattern(secrets: tuple[str, ...], credentials: tuple[str, ...]
             ) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """One pattern for every form of every secret (longest first), signatures and URL
    credentials; and the forms, for a quick test before it is run."""
    forms: dict[str, bool] = {}
    for secret in secrets:
        for form in secret_forms(secret):
            forms[form] = forms.get(form, True) and len(secret) < _MIN_SECRET_LEN
    for credential in credentials:
        for form in _b64_forms(credential.encode()):
            forms[form] = False
    ordered = sorted(forms, key=len, reverse=True)
    alternatives = [_SIGNATURE_AND_USERINFO, *(_alternative(f, forms[f]) for f in ordered)]
    return re.compile("|".join(alternatives)), tuple(ordered)


def _replace(match: re.Match[str]) -> str:
    if match.group("sig"):
        return f"Signature={MASK}"
    if match.group("url"):
        return f"://{MASK}@"
    return MASK


class Redactor:
    """Masks known secret values anywhere in text, and secret headers by name."""

    def __init__(self, secrets: Iterable[str] = (), secret_headers: Iterable[str] = (),
                 credentials: Iterable[str] = ()) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s}))
        self._credentials = tuple(sorted({c for c in credentials if c}))
        self._pattern, self._forms = _pattern(self._secrets, self._credentials)
        self._secret_headers = ALWAYS_SECRET_HEADERS | {h.lower() for h in secret_headers}

    @classmethod
    def for_credentials(
        cls,
        username: str = "",
        password: str = "",
        signing_key: str = "",
        secret_header_values: Mapping[str, str] | None = None,
        also_mask: Iterable[str] = (),
    ) -> Redactor:
        """A redactor for one integration's credentials and secret headers (and any other
        secrets in ``also_mask``)."""
        headers = dict(secret_header_values or {})
        secrets = [password, signing_key, *headers.values(), *also_mask]
        credentials = [f"{username}:{password}"] if username or password else []
        return cls(secrets, headers.keys(), credentials)

    def _may_hold(self, value: str) -> bool:
        """False when ``value`` surely holds nothing to mask: none of the pattern's literal
        parts is in it (substring tests are far cheaper than the pattern's scan)."""
        return ("Signature=" in value or any(form in value for form in self._forms)
                or ("://" in value and _USERINFO.search(value) is not None))

    def text(self, value: str) -> str:
        """``value`` with every secret value (in any of its forms), URL credential and
        signature masked."""
        return self._pattern.sub(_replace, value) if self._may_hold(value) else value

    def finds_secret(self, value: str) -> bool:
        """True when ``value`` holds something ``text`` would mask."""
        return self._may_hold(value) and self._pattern.search(value) is not None

    def is_secret_header(self, name: str) -> bool:
        """True when ``header_value`` masks this header by its name (whatever its value)."""
        return name.lower() in self._secret_headers

    def header_value(self, name: str, value: str) -> str:
        """One header's value as it may be shown."""
        lower = name.lower()
        if lower in ("authorization", "proxy-authorization"):
            scheme, _, _ = value.partition(" ")
            return f"{scheme} {MASK}" if scheme and scheme != value else MASK
        if lower == "gladly-authorization":
            return _SIGNATURE.sub(rf"\1{MASK}", self.text(value))
        if lower in self._secret_headers:
            return MASK
        return self.text(value)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``headers`` safe to store and show."""
        return {name: self.header_value(name, value) for name, value in headers.items()}


def mask_json(value: Any, mask: Callable[[str], str]) -> Any:
    """A decoded JSON value with every string (keys too) passed through ``mask`` (no
    recursion, so deep documents cannot exhaust the stack)."""
    return map_strings(value, mask)
