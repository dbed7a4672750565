"""An integration's configuration: one validated shape from the form or TOML file to the wire.

Pure rules, no I/O. ``IntegrationSpec`` is what an admin gives (create, apply, or a full update
from the page), ``IntegrationChanges`` a partial update, ``SecretChange`` says what happens to a
stored secret (keep / replace / remove). ``validate_config`` turns the raw values into an
``IntegrationConfig`` (secrets in clear, memory only) or raises ``InvalidInput`` with one message
per bad field. The adaptor URL, header, realm and timeout rules here are the only ones: the
lookup layer's ``AdaptorTarget`` runs the same functions. The rate caps
(``max_concurrent_requests``, ``max_requests_per_second``) are checked here too; the lookup
layer's gate enforces them.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from linker.core.autolink import AutolinkField
from linker.core.errors import InvalidInput
from linker.safetext import forbidden_character

DEFAULT_TIMEOUT_S = 5.0
MIN_TIMEOUT_S = 1.0
MAX_TIMEOUT_S = 15.0
MAX_NAME = 100
MAX_URL = 2000
MAX_TEXT = 200
MAX_SECRET = 4000
MAX_ATTRIBUTE = 100
MAX_CONCURRENT_CAP = 256
"""Highest ``max_concurrent_requests`` (a backfill never has more than 256 in flight)."""
MIN_RATE_CAP = 0.1
MAX_RATE_CAP = 10_000.0

# Headers the client sets itself; a custom header may not replace them (the contract fixes
# their values, and a second copy under another letter case would break the signature).
RESERVED_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "gladly-authorization",
    "gladly-time", "gladly-correlation-id", "x-b3-traceid", "authorization", "www-authenticate",
    "accept", "content-type", "user-agent", "accept-encoding",
})

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PRINTABLE = re.compile(r"^[\x20-\x7e\t]*$")
_FORBIDDEN_IN_URL = re.compile(r"[\x00-\x20\x7f]")
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")

SECRET_FIELDS = ("password", "signing_key")
CAP_FIELDS = ("max_concurrent_requests", "max_requests_per_second")


# -- the rules shared with the lookup layer ---------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: object, *, https_off_loopback: bool = False) -> str | None:
    """Why ``url`` cannot be an adaptor URL (a sentence saying what to fix), or None.

    With ``https_off_loopback`` (an integration's setting) plain http is accepted only for
    local adaptors; an ad-hoc target may use http anywhere.
    """
    if not isinstance(url, str) or not url:
        return "give the adaptor's URL, e.g. https://adaptor.example.com/lookup"
    bad = _FORBIDDEN_IN_URL.search(url)
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
    if _DOTTED_NUMBERS.match(parts.hostname) and not _is_ipv4(parts.hostname):
        return f"the adaptor URL {url!r} has an invalid IPv4 address; fix the host"
    if https_off_loopback and parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return ("use https; plain http is accepted only for local adaptors "
                "(localhost, 127.0.0.0/8, ::1)")
    return None


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def header_name_problem(name: str, seen: Sequence[str]) -> str | None:
    """Why ``name`` cannot be a custom header (``seen``: names already given), or None."""
    if not _TOKEN.match(name):
        return f"{name!r} is not a valid header name (letters, digits, '-')"
    if name.lower() in RESERVED_HEADERS:
        return f"{name} is set by Linker itself; remove it from the custom headers"
    if name.lower() in (s.lower() for s in seen):
        return f"{name} is given twice"
    return None


def header_value_problem(name: str, value: str) -> str | None:
    """Why ``value`` cannot be sent as header ``name``, or None."""
    if not _PRINTABLE.match(value):
        return f"the value of {name} has non-ASCII or control characters; use printable ASCII"
    return None


def realm_problem(realm: str) -> str | None:
    """Why ``realm`` cannot go in the WWW-Authenticate header, or None."""
    if not _PRINTABLE.match(realm) or '"' in realm or "\\" in realm:
        return "the realm must be plain ASCII text without quotes or backslashes"
    return None


def timeout_problem(value: object, *, positive_only: bool = False) -> str | None:
    """Why ``value`` is not an integration's timeout (1 to 15 s), or None.

    ``positive_only``: an ad-hoc target accepts any positive number (clamped to 15 s).
    """
    number = (not isinstance(value, bool) and isinstance(value, int | float)
              and not math.isnan(value))
    if positive_only:
        if number and value > 0:  # type: ignore[operator]
            return None
        return f"timeout must be a positive number of seconds, got {value!r}"
    if not number:
        return f"give a number of seconds, got {value!r}"
    if not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:  # type: ignore[operator]
        return (f"use {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g} seconds (got {value:g}); adaptors "
                "are given up on after 15 s")
    return None


# -- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretChange:
    """What an update does to a stored secret: keep it, replace it with ``value``, remove it."""

    action: Literal["keep", "replace", "remove"]
    value: str = ""

    @classmethod
    def keep(cls) -> SecretChange:
        """Leave the stored secret as it is."""
        return cls("keep")

    @classmethod
    def replace(cls, value: str) -> SecretChange:
        """Store ``value`` instead (an empty value keeps the stored secret)."""
        return cls("replace", value) if value else cls("keep")

    @classmethod
    def remove(cls) -> SecretChange:
        """Clear the stored secret."""
        return cls("remove")

    @classmethod
    def of(cls, value: SecretChange | str | None) -> SecretChange:
        """The change a plain value stands for: None keeps, "" removes, text replaces."""
        if isinstance(value, SecretChange):
            return value
        if value is None:
            return cls.keep()
        return cls("replace", value) if value != "" else cls.remove()

    def resolve(self, stored: str) -> str:
        """The secret after the change, given the stored one."""
        return {"keep": stored, "replace": self.value, "remove": ""}[self.action]

    def __repr__(self) -> str:
        return f"SecretChange({self.action!r})"  # never the value


@dataclass(frozen=True)
class AttributeSpec:
    """A search query or results attribute: the key sent/read and its label (default: key)."""

    attribute: str
    label: str = ""


DEFAULT_SEARCH_QUERY_ATTRIBUTES = (AttributeSpec("email", "Email"), AttributeSpec("phone", "Phone"))
"""What a new integration's add form starts with: the contract's usual search keys, so the
workbench's searches send the profile's email and phone instead of silently skipping it."""


@dataclass(frozen=True)
class HeaderSpec:
    """An extra HTTP header. For a secret header in an update, ``value=None`` keeps the stored
    value of the header with the same name."""

    name: str
    value: str | None = None
    secret: bool = False

    def __repr__(self) -> str:
        shown = "***" if self.secret else repr(self.value)
        return f"HeaderSpec({self.name!r}, {shown}, secret={self.secret})"


Secret = SecretChange | str | None
"""A secret in a spec: a ``SecretChange`` or its plain form (None keeps, "" removes)."""


@dataclass(frozen=True)
class IntegrationSpec:
    """Everything an integration is configured with (create, apply, full update). Secrets:
    a ``SecretChange``; as plain values None means "not set" on create and "keep" on update,
    "" clears."""

    name: str
    url: str
    username: str = ""
    password: Secret = None
    realm: str = ""
    signing_key: Secret = None
    headers: Sequence[HeaderSpec | Mapping[str, Any]] = ()
    search_query_attributes: Sequence[AttributeSpec | Mapping[str, Any]] = ()
    search_results_attributes: Sequence[AttributeSpec | Mapping[str, Any]] = ()
    autolink_enabled: bool = False
    autolink_fields: Sequence[str] = ()
    overwrite_existing: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    active: bool = True
    max_concurrent_requests: int | None = None
    """Most requests in flight to the adaptor at once, across every process (None or 0: no
    cap)."""
    max_requests_per_second: float | None = None
    """Most requests started per second, across every process (None or 0: no cap)."""


@dataclass(frozen=True)
class IntegrationChanges:
    """A partial update: None leaves a setting as it is. For ``password`` and ``signing_key``,
    None keeps, "" clears and a value replaces (or give a ``SecretChange``). For the rate caps,
    None keeps, 0 removes the cap and a number sets it."""

    name: str | None = None
    url: str | None = None
    username: str | None = None
    password: Secret = None
    realm: str | None = None
    signing_key: Secret = None
    headers: Sequence[HeaderSpec | Mapping[str, Any]] | None = None
    search_query_attributes: Sequence[AttributeSpec | Mapping[str, Any]] | None = None
    search_results_attributes: Sequence[AttributeSpec | Mapping[str, Any]] | None = None
    autolink_enabled: bool | None = None
    autolink_fields: Sequence[str] | None = None
    overwrite_existing: bool | None = None
    timeout_s: float | None = None
    active: bool | None = None
    max_concurrent_requests: int | None = None
    max_requests_per_second: float | None = None

    @classmethod
    def of(cls, changes: IntegrationSpec | IntegrationChanges | Mapping[str, Any]
           ) -> IntegrationChanges:
        """Changes from a full spec (every setting), changes, or a mapping of setting names;
        InvalidInput names an unknown setting."""
        if isinstance(changes, IntegrationChanges):
            return changes
        if isinstance(changes, IntegrationSpec):
            every = {f.name: getattr(changes, f.name) for f in fields(cls)}
            for cap in CAP_FIELDS:  # in a spec None means "no cap"; in changes it would keep
                every[cap] = every[cap] or 0
            return cls(**every)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidInput({k: "not an integration setting" for k in unknown})
        return cls(**dict(changes))


# -- the validated configuration --------------------------------------------------------------


@dataclass(frozen=True)
class IntegrationConfig:
    """An integration's settings with secrets in clear (memory only, never returned)."""

    name: str
    url: str
    username: str
    password: str
    realm: str
    signing_key: str
    headers: tuple[HeaderSpec, ...]
    search_query_attributes: tuple[AttributeSpec, ...]
    search_results_attributes: tuple[AttributeSpec, ...]
    autolink_enabled: bool
    autolink_fields: tuple[str, ...]
    overwrite_existing: bool
    timeout_s: float
    active: bool
    max_concurrent_requests: int | None = None
    """Most requests in flight at once (None: no cap; a raw config may hold 0 for none)."""
    max_requests_per_second: float | None = None
    """Most requests started per second (None: no cap; a raw config may hold 0 for none)."""

    @classmethod
    def of_spec(cls, spec: IntegrationSpec) -> IntegrationConfig:
        """The raw (not yet validated) config of a new integration's spec."""
        return cls(
            name=spec.name, url=spec.url, username=spec.username,
            password=SecretChange.of(spec.password).resolve(""), realm=spec.realm,
            signing_key=SecretChange.of(spec.signing_key).resolve(""),
            headers=tuple(map(header_spec, spec.headers)),
            search_query_attributes=tuple(map(attribute_spec, spec.search_query_attributes)),
            search_results_attributes=tuple(map(attribute_spec,
                                                spec.search_results_attributes)),
            autolink_enabled=spec.autolink_enabled, autolink_fields=tuple(spec.autolink_fields),
            overwrite_existing=spec.overwrite_existing, timeout_s=spec.timeout_s,
            active=spec.active, max_concurrent_requests=spec.max_concurrent_requests,
            max_requests_per_second=spec.max_requests_per_second)

    def changed(self, changes: IntegrationChanges) -> IntegrationConfig:
        """The raw (not yet validated) config after ``changes``."""
        rows = {"headers": header_spec, "search_query_attributes": attribute_spec,
                "search_results_attributes": attribute_spec}
        updates: dict[str, Any] = {}
        for f in fields(IntegrationChanges):
            value = getattr(changes, f.name)
            if f.name in SECRET_FIELDS:
                updates[f.name] = SecretChange.of(value).resolve(getattr(self, f.name))
                continue
            if value is None:
                continue
            if f.name in rows:
                value = tuple(map(rows[f.name], value))
            elif isinstance(value, list):
                value = tuple(value)
            updates[f.name] = value
        return replace(self, **updates)

    def secret_header_names(self) -> frozenset[str]:
        """Names of the headers whose values are secret."""
        return frozenset(h.name for h in self.headers if h.secret)

    def header_values(self) -> dict[str, str]:
        """Every extra header by name, secret values in clear (only ever sent)."""
        return {h.name: h.value or "" for h in self.headers}

    @property
    def rate_capped(self) -> bool:
        """True when at least one rate cap is set."""
        return bool(self.max_concurrent_requests) or bool(self.max_requests_per_second)

    def __repr__(self) -> str:
        return f"IntegrationConfig(name={self.name!r}, url={self.url!r})"  # never secrets


def attribute_spec(row: AttributeSpec | Mapping[str, Any]) -> AttributeSpec:
    """An attribute row from its spec or a plain mapping."""
    if isinstance(row, AttributeSpec):
        return row
    return AttributeSpec(row.get("attribute"), row.get("label"))  # type: ignore[arg-type]


def header_spec(row: HeaderSpec | Mapping[str, Any]) -> HeaderSpec:
    """A header row from its spec or a plain mapping."""
    if isinstance(row, HeaderSpec):
        return row
    value = row.get("value")
    return HeaderSpec(str(row.get("name") or ""), None if value is None else str(value),
                      bool(row.get("secret")))


def changed_settings(before: IntegrationConfig, after: IntegrationConfig) -> tuple[str, ...]:
    """Names of the settings that differ (secrets compared in clear, reported by name only)."""
    return tuple(f.name for f in fields(IntegrationConfig)
                 if getattr(before, f.name) != getattr(after, f.name))


def caps_text(concurrent: int | None, per_second: float | None) -> str:
    """Rate caps in words: ``4 at once, 10 per second``, ``4 at once`` or ``no cap``."""
    parts = []
    if concurrent:
        parts.append(f"{concurrent} at once")
    if per_second:
        parts.append(f"{per_second:g} per second")
    return ", ".join(parts) or "no cap"


def secrets_changed(before: IntegrationConfig, after: IntegrationConfig) -> tuple[str, ...]:
    """Which secrets differ: password, signing_key, and header:<name> for a secret header whose
    value was replaced."""
    changed = [k for k in SECRET_FIELDS if getattr(before, k) != getattr(after, k)]
    old = {h.name.lower(): h.value for h in before.headers if h.secret}
    changed += [f"header:{h.name.lower()}" for h in after.headers
                if h.secret and h.name.lower() in old and old[h.name.lower()] != h.value]
    return tuple(changed)


# -- validation --------------------------------------------------------------------------------

NO_AUTOLINK_FIELD = ("choose email, mobile phone or both to turn auto-linking on (with no "
                     "field it would never send a request)")


def _text(problems: dict[str, str], key: str, value: object, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems[key] = f"expected text, got {type(value).__name__}"
        return ""
    text = value.strip()
    if len(text) > limit:
        problems[key] = f"use at most {limit} characters"
    return text


def _bool(problems: dict[str, str], key: str, value: object) -> bool:
    if not isinstance(value, bool):
        problems[key] = f"expected true or false, got {value!r}"
        return False
    return value


def _timeout(problems: dict[str, str], value: object) -> float:
    problem = timeout_problem(value)
    if problem:
        problems["timeout_s"] = problem
    return float(value) if isinstance(value, int | float) else DEFAULT_TIMEOUT_S


def _concurrent_cap(problems: dict[str, str], value: object) -> int | None:
    """``max_concurrent_requests``: None or 0 is no cap (None), else a whole number 1..256."""
    if value is None or (value == 0 and not isinstance(value, bool)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        problems["max_concurrent_requests"] = (
            f"give a whole number of requests, got {value!r}; leave it empty (or 0) for no cap")
        return None
    if not 1 <= value <= MAX_CONCURRENT_CAP:
        problems["max_concurrent_requests"] = (
            f"use 1 to {MAX_CONCURRENT_CAP} requests at once (got {value}); leave it empty "
            "(or 0) for no cap")
    return value


def _rate_cap(problems: dict[str, str], value: object) -> float | None:
    """``max_requests_per_second``: None or 0 is no cap (None), else a number 0.1..10,000."""
    if value is None or (value == 0 and not isinstance(value, bool)):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value):
        problems["max_requests_per_second"] = (
            f"give a number of requests per second, got {value!r}; leave it empty (or 0) for "
            "no cap")
        return None
    if not MIN_RATE_CAP <= value <= MAX_RATE_CAP:
        problems["max_requests_per_second"] = (
            f"use {MIN_RATE_CAP:g} to {MAX_RATE_CAP:,.0f} requests per second (got {value:g}); "
            "leave it empty (or 0) for no cap")
    return float(value)


def _secret(problems: dict[str, str], key: str, value: object, *, strip: bool) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        problems[key] = "expected text"
        return ""
    value = value.strip() if strip else value
    if len(value) > MAX_SECRET or not value.isprintable():
        problems[key] = f"use printable characters, at most {MAX_SECRET}"
    return value


def _attributes(problems: dict[str, str], key: str,
                rows: Sequence[AttributeSpec]) -> tuple[AttributeSpec, ...]:
    clean: list[AttributeSpec] = []
    messages: list[str] = []
    for i, row in enumerate(rows, start=1):
        raw = (row.attribute, row.label)
        if not all(v is None or isinstance(v, str) for v in raw):
            messages.append(f"row {i}: attribute and label must be text")
            continue
        attribute, label = ((v or "").strip() for v in raw)
        if not attribute:
            messages.append(f"row {i}: the attribute is empty")
        elif len(attribute) > MAX_ATTRIBUTE or len(label) > MAX_ATTRIBUTE:
            messages.append(f"row {i}: use at most {MAX_ATTRIBUTE} characters")
        elif any(a.attribute == attribute for a in clean):
            messages.append(f"row {i}: attribute {attribute!r} is given twice")
        else:
            clean.append(AttributeSpec(attribute, label or attribute))
    if messages:
        problems[key] = "; ".join(messages)
    return tuple(clean)


def _headers(problems: dict[str, str], rows: Sequence[HeaderSpec],
             stored: Sequence[HeaderSpec]) -> tuple[HeaderSpec, ...]:
    clean: list[HeaderSpec] = []
    messages: list[str] = []
    kept = {h.name.lower(): h.value for h in stored if h.secret}
    for row in rows:
        name = (row.name or "").strip()
        value = row.value
        if row.secret and value is None:
            value = kept.get(name.lower())
        problem = header_name_problem(name, [h.name for h in clean])
        if problem is None and (value is None or (row.secret and value == "")):
            problem = f"give a value for {name}"
        if problem is None and value is not None:
            problem = header_value_problem(name, value)
        if problem is None and value is not None and len(value) > MAX_SECRET:
            problem = f"the value of {name} is longer than {MAX_SECRET} characters"
        if problem:
            messages.append(problem)
        else:
            clean.append(HeaderSpec(name, value, bool(row.secret)))
    if messages:
        problems["headers"] = "; ".join(messages)
    return tuple(clean)


def autolink_fields_of(problems: dict[str, str], values: Sequence[str] | str) -> tuple[str, ...]:
    """The known auto-linking fields among ``values``, in their order; unknown ones reported."""
    if isinstance(values, str):
        values = [values]
    wanted = {str(v).strip().lower() for v in values}
    known = [f.value for f in AutolinkField]
    unknown = sorted(wanted - set(known))
    if unknown:
        problems["autolink_fields"] = (f"unknown field(s) {', '.join(unknown)}; choose from "
                                       f"{', '.join(known)}")
    return tuple(f for f in known if f in wanted)


def require_autolink_field(problems: dict[str, str], enabled: bool,
                           fields: Sequence[str]) -> None:
    """Auto-linking may be on only with at least one field."""
    if enabled is True and not fields and "autolink_fields" not in problems:
        problems["autolink_fields"] = NO_AUTOLINK_FIELD


def validate_config(raw: IntegrationConfig, stored_headers: Sequence[HeaderSpec] = ()
                    ) -> IntegrationConfig:
    """``raw`` normalised and checked; InvalidInput with one message per bad field.

    ``stored_headers`` are the headers stored so far: a secret header given without a value
    keeps the stored one.
    """
    p: dict[str, str] = {}
    name = _text(p, "name", raw.name, MAX_NAME)
    if not name and "name" not in p:
        p["name"] = "give the integration a name"
    if "name" not in p and (hidden := forbidden_character(name)):
        p["name"] = f"the name contains {hidden}; remove it"
    url = _text(p, "url", raw.url, MAX_URL)
    if "url" not in p and (problem := url_problem(url, https_off_loopback=True)):
        p["url"] = problem
    realm = _text(p, "realm", raw.realm, MAX_TEXT)
    if "realm" not in p and (problem := realm_problem(realm)):
        p["realm"] = problem
    clean = IntegrationConfig(
        name=name, url=url, username=_text(p, "username", raw.username, MAX_TEXT),
        password=_secret(p, "password", raw.password, strip=False), realm=realm,
        signing_key=_secret(p, "signing_key", raw.signing_key, strip=True),
        headers=_headers(p, raw.headers, stored_headers),
        search_query_attributes=_attributes(p, "search_query_attributes",
                                            raw.search_query_attributes),
        search_results_attributes=_attributes(p, "search_results_attributes",
                                              raw.search_results_attributes),
        autolink_enabled=_bool(p, "autolink_enabled", raw.autolink_enabled),
        autolink_fields=autolink_fields_of(p, raw.autolink_fields),
        overwrite_existing=_bool(p, "overwrite_existing", raw.overwrite_existing),
        timeout_s=_timeout(p, raw.timeout_s), active=_bool(p, "active", raw.active),
        max_concurrent_requests=_concurrent_cap(p, raw.max_concurrent_requests),
        max_requests_per_second=_rate_cap(p, raw.max_requests_per_second))
    require_autolink_field(p, clean.autolink_enabled, clean.autolink_fields)
    if p:
        raise InvalidInput(p)
    return clean
