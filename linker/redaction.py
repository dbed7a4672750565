"""The one place secrets are masked before anything is stored, printed or shown.

A ``Redactor`` knows the secret values of one integration (password, signing key, secret
header values, the Basic credential built from them) and the names of headers that always
carry secrets. Every string and header map that leaves the lookup client passes through it.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "****"

# Headers whose values are secret whatever the integration says.
ALWAYS_SECRET_HEADERS = frozenset({"authorization", "gladly-authorization", "proxy-authorization",
                                   "cookie", "set-cookie", "x-api-key"})

_SIGNATURE = re.compile(r"(Signature=)[0-9a-fA-F]+")
_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")
# Secrets this short would mask ordinary words; they are still masked in headers by name.
_MIN_SECRET_LEN = 3


def basic_credential(username: str, password: str) -> str:
    """The base64 token of a Basic Authorization header."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


class Redactor:
    """Masks known secret values anywhere in text, and secret headers by name."""

    def __init__(self, secrets: Iterable[str] = (), secret_headers: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted(values, key=len, reverse=True)
        self._secret_headers = ALWAYS_SECRET_HEADERS | {h.lower() for h in secret_headers}

    @classmethod
    def for_credentials(
        cls,
        username: str = "",
        password: str = "",
        signing_key: str = "",
        secret_header_values: Mapping[str, str] | None = None,
    ) -> Redactor:
        """A redactor for one integration's credentials and secret headers."""
        headers = dict(secret_header_values or {})
        secrets = [password, signing_key, *headers.values()]
        if username or password:
            secrets.append(basic_credential(username, password))
        return cls(secrets, headers.keys())

    def text(self, value: str) -> str:
        """``value`` with every secret value, URL credential and signature masked."""
        for secret in self._secrets:
            value = value.replace(secret, MASK)
        value = _URL_USERINFO.sub(rf"\1{MASK}@", value)
        return _SIGNATURE.sub(rf"\1{MASK}", value)

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
    """A decoded JSON value with every string (keys too) passed through ``mask``."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, list):
        return [mask_json(item, mask) for item in value]
    if isinstance(value, dict):
        return {mask(str(k)): mask_json(v, mask) for k, v in value.items()}
    return value
