"""Copy as cURL: a shell command reproducing a stored (masked) request, secrets as $ENV_VARS.

A stored request has its secrets masked, so the command reads them from environment variables
instead; the signature cannot be reused (it covers ``Gladly-Time`` and the body), so the
result also carries the equivalent ``linker lookup`` command, which signs the request itself.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from linker.contract import RequestKind
from linker.lookup.exchange import RecordedRequest
from linker.lookup.target import RESERVED_HEADERS
from linker.redaction import ALWAYS_SECRET_HEADERS, MASK

PASSWORD_ENV = "LINKER_LOOKUP_PASSWORD"
SIGNING_KEY_ENV = "LINKER_LOOKUP_SIGNING_KEY"
SIGNATURE_ENV = "LINKER_GLADLY_AUTHORIZATION"
# Headers curl sets itself (or that --compressed replaces).
_DROPPED = frozenset({"host", "content-length", "accept-encoding", "transfer-encoding",
                      "connection"})
_REALM = re.compile(r'realm="([^"]*)"')
_SCALAR_KEYS = ("email", "phone", "name")


@dataclass(frozen=True)
class EnvVar:
    """An environment variable the command needs, and what to put in it."""

    name: str
    meaning: str


@dataclass(frozen=True)
class CurlCommand:
    """A cURL command, the variables it reads, a note on signing, and the signing alternative."""

    command: str
    env: tuple[EnvVar, ...]
    note: str
    lookup_command: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"command": self.command, "lookup_command": self.lookup_command,
                "note": self.note, "env": [{"name": e.name, "meaning": e.meaning}
                                           for e in self.env]}


def header_env_name(header: str) -> str:
    """The variable holding a secret header's value (``X-Api-Key``: LINKER_HEADER_X_API_KEY)."""
    return "LINKER_HEADER_" + re.sub(r"[^A-Za-z0-9]", "_", header).upper()


def _double_quoted(literal: str, variable: str = "", suffix: str = "") -> str:
    """``"literal$VARIABLEsuffix"`` with the literal parts escaped for a double-quoted word."""
    def escape(text: str) -> str:
        return re.sub(r'(["\\$`])', r"\\\1", text)
    ref = f"${{{variable}}}" if variable else ""
    return f'"{escape(literal)}{ref}{escape(suffix)}"'


def _is_secret(name: str, value: str, secret_headers: frozenset[str]) -> bool:
    lower = name.lower()
    return lower in ALWAYS_SECRET_HEADERS or lower in secret_headers or value == MASK


def curl_command(request: RecordedRequest, *, kind: RequestKind, username: str = "",
                 secret_headers: frozenset[str] = frozenset(), integration: str = ""
                 ) -> CurlCommand:
    """The cURL command and ``linker lookup`` equivalent of a stored request.

    ``username`` is the integration's Basic user name (stored requests mask the whole
    credential); ``secret_headers`` names custom headers whose values are secret.
    """
    secret_headers = frozenset(h.lower() for h in secret_headers)
    who = f" of {integration}" if integration else ""
    # One line per option: ["curl ... URL", "-H 'Accept: application/json'", ...].
    parts = [f"curl -sS --compressed -X {shlex.quote(request.method or 'POST')} "
             f"{shlex.quote(request.url)}"]
    env: dict[str, EnvVar] = {}
    signed = False
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in _DROPPED:
            continue
        if lower == "authorization":
            env[PASSWORD_ENV] = EnvVar(PASSWORD_ENV, f"the Basic auth password{who}")
            parts.append("-u " + _double_quoted(f"{username}:", PASSWORD_ENV))
        elif lower == "gladly-authorization":
            signed = True
            env[SIGNATURE_ENV] = EnvVar(SIGNATURE_ENV, "a Gladly-Authorization value recomputed "
                                        "for this body and a fresh Gladly-Time")
            parts.append("-H " + _double_quoted(f"{name}: ", SIGNATURE_ENV))
        elif _is_secret(name, value, secret_headers):
            var = header_env_name(name)
            env[var] = EnvVar(var, f"the value of the secret header {name}{who}")
            parts.append("-H " + _double_quoted(f"{name}: ", var))
        else:
            parts.append("-H " + shlex.quote(f"{name}: {value}"))
    parts.append("--data-raw " + shlex.quote(request.body))
    note = ("The stored signature cannot be reused: it covers Gladly-Time and the body. Set "
            f"${SIGNATURE_ENV} to a signature recomputed with the integration's signing key "
            "(and update Gladly-Time), or run the linker lookup command, which signs the "
            "request itself." if signed else
            "The request was not signed, so the command can be sent as it is.")
    if MASK in request.body or MASK in request.url:
        note += f" Parts shown as {MASK} were masked secrets: put the real values back."
    lookup, lookup_env = lookup_command(request, kind=kind, username=username,
                                        secret_headers=secret_headers, signed=signed, who=who)
    for needed in lookup_env:
        env.setdefault(needed.name, needed)
    return CurlCommand(" \\\n  ".join(parts), tuple(env.values()), note, lookup)


def _query(body: str) -> dict[str, Any]:
    try:
        envelope = json.loads(body)
    except ValueError:
        return {}
    query = envelope.get("query") if isinstance(envelope, dict) else None
    return query if isinstance(query, dict) else {}


def _values(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
            for v in items if v is not None]


def _query_options(kind: RequestKind, query: dict[str, Any]) -> list[str]:
    flag = {RequestKind.AUTOLINK: "--autolink", RequestKind.SEARCH: "--basic",
            RequestKind.DETAILED: "--detailed"}[kind]
    options = [flag]
    for key, value in query.items():
        if key == "id":
            options += ["--customer-id", *_values(value)[:1]]
        elif key == "externalCustomerId" and kind is RequestKind.DETAILED:
            options += ["--external-id", *_values(value)[:1]]
        elif key in ("emails", "phones") and kind is not RequestKind.SEARCH:
            for item in _values(value):
                options += [f"--{key[:-1]}", item]
        elif key in _SCALAR_KEYS and (kind is RequestKind.SEARCH or key == "name"):
            options += [f"--{key}", *_values(value)[:1]]
        else:
            options += ["--field", f"{key}={' '.join(_values(value))}"]
    return options


def lookup_command(request: RecordedRequest, *, kind: RequestKind, username: str = "",
                   secret_headers: frozenset[str] = frozenset(), signed: bool = True,
                   who: str = "") -> tuple[str, list[EnvVar]]:
    """The ``linker lookup`` command sending the same lookup (signed by Linker), and its vars."""
    parts = ["linker", "lookup", shlex.quote(request.url)]
    parts += [shlex.quote(o) for o in _query_options(kind, _query(request.body))]
    env: list[EnvVar] = []
    if signed:
        env.append(EnvVar(SIGNING_KEY_ENV, f"the signing key{who} (linker lookup reads it)"))
    for name, value in request.headers.items():
        lower = name.lower()
        if lower == "authorization":
            parts += ["--username", shlex.quote(username)]
            env.append(EnvVar(PASSWORD_ENV, f"the Basic auth password{who}"))
        elif lower == "www-authenticate":
            realm = _REALM.search(value)
            if realm and realm.group(1):
                parts += ["--realm", shlex.quote(realm.group(1))]
        elif lower in RESERVED_HEADERS:
            continue
        elif _is_secret(name, value, secret_headers):
            parts += ["--header", _double_quoted(f"{name}: ", header_env_name(name)),
                      "--secret-header", shlex.quote(name)]
        else:
            parts += ["--header", shlex.quote(f"{name}: {value}")]
    return " ".join(parts), env
