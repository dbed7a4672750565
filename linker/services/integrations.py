"""Integrations: create, update, (de)activate, delete, auto-link settings, test connection.

Secrets (password, signing key, values of headers marked secret) are encrypted with the
context's SecretBox before they are stored and are never put in a view or an audit event:
views carry ``password_set`` / ``signing_key_set`` flags and secret header rows without value.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.contract import RequestKind, search_request
from linker.core.permissions import Actor, Permission
from linker.lookup.exchange import Trigger
from linker.lookup.target import RESERVED_HEADERS, AdaptorTarget, InvalidTarget
from linker.safetext import forbidden_character
from linker.services.audit import record_audit
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput, NotFound
from linker.services.targets import target_for
from linker.store.exchanges import StoredExchange, record_exchange, stored_exchange
from linker.store.models import (
    AutolinkOutcome,
    ExchangeRecord,
    Integration,
    Link,
    PulledData,
    Suppression,
)
from linker.store.secretbox import SecretBox

AUTOLINK_FIELDS = ("email", "mobile")
DEFAULT_TIMEOUT_S = 5.0
MIN_TIMEOUT_S = 1.0
MAX_TIMEOUT_S = 15.0
MAX_NAME = 100
MAX_URL = 2000
MAX_TEXT = 200
MAX_SECRET = 4000
MAX_ATTRIBUTE = 100
TEST_EMAIL = "linker.connection.test@example.com"
"""Email of the probe search when the tester gives neither an email nor a phone."""

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PRINTABLE = re.compile(r"^[\x20-\x7e\t]*$")

# -- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeSpec:
    """A search query or results attribute: the key sent/read and its label (default: key)."""

    attribute: str
    label: str = ""


@dataclass(frozen=True)
class HeaderSpec:
    """An extra HTTP header. For a secret header in an update, ``value=None`` keeps the stored
    value of the header with the same name."""

    name: str
    value: str | None = None
    secret: bool = False


@dataclass(frozen=True)
class IntegrationSpec:
    """Everything an integration is configured with. Secrets: None means "not set" on create
    and "keep" in ``apply``; "" clears."""

    name: str
    url: str
    username: str = ""
    password: str | None = None
    realm: str = ""
    signing_key: str | None = None
    headers: Sequence[HeaderSpec | Mapping[str, Any]] = ()
    search_query_attributes: Sequence[AttributeSpec | Mapping[str, Any]] = ()
    search_results_attributes: Sequence[AttributeSpec | Mapping[str, Any]] = ()
    autolink_enabled: bool = False
    autolink_fields: Sequence[str] = ()
    overwrite_existing: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    active: bool = True


@dataclass(frozen=True)
class IntegrationChanges:
    """Changes for ``update``: None leaves a setting as it is. For ``password`` and
    ``signing_key``, None keeps, "" clears and a value replaces."""

    name: str | None = None
    url: str | None = None
    username: str | None = None
    password: str | None = None
    realm: str | None = None
    signing_key: str | None = None
    headers: Sequence[HeaderSpec | Mapping[str, Any]] | None = None
    search_query_attributes: Sequence[AttributeSpec | Mapping[str, Any]] | None = None
    search_results_attributes: Sequence[AttributeSpec | Mapping[str, Any]] | None = None
    autolink_enabled: bool | None = None
    autolink_fields: Sequence[str] | None = None
    overwrite_existing: bool | None = None
    timeout_s: float | None = None
    active: bool | None = None


# -- views -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeaderView:
    """An extra header as shown: a secret header's value is None (never shown)."""

    name: str
    value: str | None
    secret: bool


@dataclass(frozen=True)
class AttributeView:
    """A search query or results attribute and its label."""

    attribute: str
    label: str


@dataclass(frozen=True)
class IntegrationView:
    """An integration's settings without any secret value."""

    id: int
    name: str
    url: str
    username: str
    password_set: bool
    realm: str
    signing_key_set: bool
    headers: tuple[HeaderView, ...]
    search_query_attributes: tuple[AttributeView, ...]
    search_results_attributes: tuple[AttributeView, ...]
    autolink_enabled: bool
    autolink_fields: tuple[str, ...]
    overwrite_existing: bool
    timeout_s: float
    active: bool
    created_at: datetime
    updated_at: datetime

    def display(self) -> dict[str, Any]:
        """Plain dict for audit events and JSON output; secrets only as "set" flags."""
        return {
            "id": self.id, "name": self.name, "url": self.url, "username": self.username,
            "password_set": self.password_set, "realm": self.realm,
            "signing_key_set": self.signing_key_set,
            "headers": [{"name": h.name, "value": h.value, "secret": h.secret}
                        for h in self.headers],
            "search_query_attributes": [{"attribute": a.attribute, "label": a.label}
                                        for a in self.search_query_attributes],
            "search_results_attributes": [{"attribute": a.attribute, "label": a.label}
                                          for a in self.search_results_attributes],
            "autolink_enabled": self.autolink_enabled,
            "autolink_fields": list(self.autolink_fields),
            "overwrite_existing": self.overwrite_existing, "timeout_s": self.timeout_s,
            "active": self.active,
        }


@dataclass(frozen=True)
class Impact:
    """What deactivating or deleting an integration touches."""

    integration_id: int
    integration_name: str
    profiles_with_data: int
    """Profiles whose pulled data from it disappears on deactivation or deletion."""
    links: int
    """Links that go dormant on deactivation, or are removed on deletion."""
    suppressions: int
    outcomes: int


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did to one integration: created, updated (with the changed settings) or
    nothing."""

    integration: IntegrationView
    action: Literal["created", "updated", "unchanged"]
    changed: tuple[str, ...] = ()


# -- the plain state and its validation -------------------------------------------------------


@dataclass(frozen=True)
class _State:
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


_SECRET_FIELDS = ("password", "signing_key")


def _state_of(integration: Integration, box: SecretBox) -> _State:
    return _State(
        name=integration.name, url=integration.url, username=integration.username,
        password=box.decrypt(integration.password_enc), realm=integration.realm,
        signing_key=box.decrypt(integration.signing_key_enc),
        headers=tuple(
            HeaderSpec(str(r["name"]),
                       box.decrypt(r.get("value_enc", "")) if r.get("secret")
                       else str(r.get("value", "")), bool(r.get("secret")))
            for r in integration.headers),
        search_query_attributes=tuple(AttributeSpec(str(r["attribute"]), str(r["label"]))
                                      for r in integration.search_query_attributes),
        search_results_attributes=tuple(AttributeSpec(str(r["attribute"]), str(r["label"]))
                                        for r in integration.search_results_attributes),
        autolink_enabled=integration.autolink_enabled,
        autolink_fields=tuple(str(f) for f in integration.autolink_fields),
        overwrite_existing=integration.overwrite_existing, timeout_s=integration.timeout_s,
        active=integration.active)


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


def _url_problem(url: str) -> str | None:
    if not url:
        return "give the adaptor's URL, e.g. https://adaptor.example.com/lookup"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "use an absolute https:// URL, e.g. https://adaptor.example.com/lookup"
    if parts.username is not None or parts.password is not None:
        return "put credentials in the username/password settings, not in the URL"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return ("use https; plain http is accepted only for local adaptors "
                "(localhost, 127.0.0.0/8, ::1)")
    return None


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _timeout(problems: dict[str, str], value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        problems["timeout_s"] = f"give a number of seconds, got {value!r}"
        return DEFAULT_TIMEOUT_S
    if not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:
        problems["timeout_s"] = (f"use {MIN_TIMEOUT_S:g} to {MAX_TIMEOUT_S:g} seconds "
                                 f"(got {value:g}); adaptors are given up on after 15 s")
    return float(value)


def _attribute_spec(row: AttributeSpec | Mapping[str, Any]) -> AttributeSpec:
    if isinstance(row, AttributeSpec):
        return row
    return AttributeSpec(row.get("attribute"), row.get("label"))  # type: ignore[arg-type]


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


def _header_spec(row: HeaderSpec | Mapping[str, Any]) -> HeaderSpec:
    if isinstance(row, HeaderSpec):
        return row
    value = row.get("value")
    return HeaderSpec(str(row.get("name") or ""), None if value is None else str(value),
                      bool(row.get("secret")))


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
        if not _TOKEN.match(name):
            messages.append(f"{name!r} is not a valid header name (letters, digits, '-')")
        elif name.lower() in RESERVED_HEADERS:
            messages.append(f"{name} is set by Linker itself; remove it")
        elif any(h.name.lower() == name.lower() for h in clean):
            messages.append(f"{name} is given twice")
        elif value is None or (row.secret and value == ""):
            messages.append(f"give a value for {name}")
        elif not _PRINTABLE.match(value) or len(value) > MAX_SECRET:
            messages.append(f"the value of {name} must be printable ASCII, at most "
                            f"{MAX_SECRET} characters")
        else:
            clean.append(HeaderSpec(name, value, bool(row.secret)))
    if messages:
        problems["headers"] = "; ".join(messages)
    return tuple(clean)


NO_AUTOLINK_FIELD = ("choose email, mobile phone or both to turn auto-linking on (with no "
                     "field it would never send a request)")


def _require_autolink_field(problems: dict[str, str], enabled: bool,
                            fields: Sequence[str]) -> None:
    """Auto-linking may be on only with at least one field."""
    if enabled is True and not fields and "autolink_fields" not in problems:
        problems["autolink_fields"] = NO_AUTOLINK_FIELD


def _autolink_fields(problems: dict[str, str], values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    wanted = {str(v).strip().lower() for v in values}
    unknown = sorted(wanted - set(AUTOLINK_FIELDS))
    if unknown:
        problems["autolink_fields"] = (f"unknown field(s) {', '.join(unknown)}; choose from "
                                       "email, mobile")
    return tuple(f for f in AUTOLINK_FIELDS if f in wanted)


def _validated(state: _State, stored_headers: Sequence[HeaderSpec] = ()) -> _State:
    """``state`` normalised and checked; InvalidInput with one message per bad field."""
    p: dict[str, str] = {}
    name = _text(p, "name", state.name, MAX_NAME)
    if not name and "name" not in p:
        p["name"] = "give the integration a name"
    if "name" not in p and (hidden := forbidden_character(name)):
        p["name"] = f"the name contains {hidden}; remove it"
    url = _text(p, "url", state.url, MAX_URL)
    if "url" not in p and (problem := _url_problem(url)):
        p["url"] = problem
    realm = _text(p, "realm", state.realm, MAX_TEXT)
    if "realm" not in p and (not _PRINTABLE.match(realm) or '"' in realm or "\\" in realm):
        p["realm"] = "use plain ASCII text without quotes or backslashes"
    clean = _State(
        name=name, url=url, username=_text(p, "username", state.username, MAX_TEXT),
        password=_secret(p, "password", state.password, strip=False), realm=realm,
        signing_key=_secret(p, "signing_key", state.signing_key, strip=True),
        headers=_headers(p, state.headers, stored_headers),
        search_query_attributes=_attributes(p, "search_query_attributes",
                                            state.search_query_attributes),
        search_results_attributes=_attributes(p, "search_results_attributes",
                                              state.search_results_attributes),
        autolink_enabled=_bool(p, "autolink_enabled", state.autolink_enabled),
        autolink_fields=_autolink_fields(p, state.autolink_fields),
        overwrite_existing=_bool(p, "overwrite_existing", state.overwrite_existing),
        timeout_s=_timeout(p, state.timeout_s), active=_bool(p, "active", state.active))
    _require_autolink_field(p, clean.autolink_enabled, clean.autolink_fields)
    if not p:
        try:
            _target(clean)
        except InvalidTarget as exc:
            p["settings"] = str(exc)
    if p:
        raise InvalidInput(p)
    return clean


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


def _target(state: _State) -> AdaptorTarget:
    return AdaptorTarget(
        url=state.url, name=state.name, username=state.username, password=state.password,
        realm=state.realm, signing_key=state.signing_key,
        headers={h.name: h.value or "" for h in state.headers},
        secret_headers=frozenset(h.name for h in state.headers if h.secret),
        timeout_s=state.timeout_s)


def _changed_settings(before: _State, after: _State) -> tuple[str, ...]:
    """Names of the settings that differ (secrets compared in clear, reported by name only)."""
    return tuple(f.name for f in fields(_State) if getattr(before, f.name) != getattr(
        after, f.name))


def _audit_dicts(before: IntegrationView | None, after: IntegrationView,
                 secrets_changed: Sequence[str] = ()
                 ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Before/after display dicts holding only what differs (everything on create); a secret
    replaced by another value shows as "replaced", never as its value."""
    new = after.display()
    for key in _SECRET_FIELDS:
        if key in secrets_changed and new[f"{key}_set"] and before is not None and getattr(
                before, f"{key}_set"):
            new[f"{key}_set"] = "replaced"
    for row in new["headers"]:
        if row["secret"]:
            row["value"] = "replaced" if f"header:{row['name'].lower()}" in secrets_changed \
                else None
    if before is None:
        return None, new
    old = before.display()
    keys = [k for k in new if old[k] != new[k]]
    return {k: old[k] for k in keys}, {k: new[k] for k in keys}


def _secrets_changed(before: _State, after: _State) -> tuple[str, ...]:
    """Which secrets differ: password, signing_key, and header:<name> for a secret header whose
    value was replaced."""
    changed = [k for k in _SECRET_FIELDS if getattr(before, k) != getattr(after, k)]
    old = {h.name.lower(): h.value for h in before.headers if h.secret}
    changed += [f"header:{h.name.lower()}" for h in after.headers
                if h.secret and h.name.lower() in old and old[h.name.lower()] != h.value]
    return tuple(changed)


@contextmanager
def _name_guarded_session(ctx: ServiceContext, name: str) -> Iterator[Session]:
    """A write session turning a unique-name race into a Conflict naming the integration."""
    try:
        with ctx.db.session() as s:
            yield s
    except IntegrityError:
        raise Conflict(_name_taken(name.strip())) from None


# -- the service -----------------------------------------------------------------------------


def _view(integration: Integration) -> IntegrationView:
    return IntegrationView(
        id=integration.id, name=integration.name, url=integration.url,
        username=integration.username, password_set=bool(integration.password_enc),
        realm=integration.realm, signing_key_set=bool(integration.signing_key_enc),
        headers=tuple(HeaderView(str(r["name"]),
                                 None if r.get("secret") else str(r.get("value", "")),
                                 bool(r.get("secret"))) for r in integration.headers),
        search_query_attributes=tuple(AttributeView(str(r["attribute"]), str(r["label"]))
                                      for r in integration.search_query_attributes),
        search_results_attributes=tuple(AttributeView(str(r["attribute"]), str(r["label"]))
                                        for r in integration.search_results_attributes),
        autolink_enabled=integration.autolink_enabled,
        autolink_fields=tuple(str(f) for f in integration.autolink_fields),
        overwrite_existing=integration.overwrite_existing, timeout_s=integration.timeout_s,
        active=integration.active, created_at=integration.created_at,
        updated_at=integration.updated_at)


def _spec_state(spec: IntegrationSpec) -> _State:
    return _State(
        name=spec.name, url=spec.url, username=spec.username, password=spec.password or "",
        realm=spec.realm, signing_key=spec.signing_key or "",
        headers=tuple(map(_header_spec, spec.headers)),
        search_query_attributes=tuple(map(_attribute_spec, spec.search_query_attributes)),
        search_results_attributes=tuple(map(_attribute_spec, spec.search_results_attributes)),
        autolink_enabled=spec.autolink_enabled, autolink_fields=tuple(spec.autolink_fields),
        overwrite_existing=spec.overwrite_existing, timeout_s=spec.timeout_s, active=spec.active)


def _as_changes(changes: IntegrationChanges | Mapping[str, Any]) -> IntegrationChanges:
    if isinstance(changes, IntegrationChanges):
        return changes
    known = {f.name for f in fields(IntegrationChanges)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise InvalidInput({k: "not an integration setting" for k in unknown})
    return IntegrationChanges(**dict(changes))


def _apply_changes(state: _State, changes: IntegrationChanges) -> _State:
    rows = {"headers": _header_spec, "search_query_attributes": _attribute_spec,
            "search_results_attributes": _attribute_spec}
    updates: dict[str, Any] = {}
    for f in fields(IntegrationChanges):
        value = getattr(changes, f.name)
        if value is None:
            continue
        if f.name in rows:
            value = tuple(map(rows[f.name], value))
        elif isinstance(value, list):
            value = tuple(value)
        updates[f.name] = value
    return replace(state, **updates)


class IntegrationService:
    """Configure the external systems Linker links profiles to."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # -- reads -----------------------------------------------------------------------------

    def list(self, actor: Actor) -> list[IntegrationView]:
        """Every integration, by name (no secret values)."""
        actor.require(Permission.VIEW_INTEGRATIONS, "view integrations")
        with self.ctx.db.session(readonly=True) as s:
            return [_view(i) for i in s.scalars(select(Integration).order_by(
                Integration.name_key))]

    def get(self, actor: Actor, integration_id: int) -> IntegrationView:
        """One integration by id; NotFound when there is none."""
        actor.require(Permission.VIEW_INTEGRATIONS, "view integrations")
        with self.ctx.db.session(readonly=True) as s:
            return _view(_load(s, integration_id))

    def get_by_name(self, actor: Actor, name: str) -> IntegrationView:
        """One integration by name (case-insensitive); NotFound when there is none."""
        actor.require(Permission.VIEW_INTEGRATIONS, "view integrations")
        with self.ctx.db.session(readonly=True) as s:
            return _view(_load_by_name(s, name))

    def impact(self, actor: Actor, integration_id: int) -> Impact:
        """How many profiles have data from it and how many links, suppressions and outcomes
        it has: what deactivation or deletion would touch."""
        actor.require(Permission.VIEW_INTEGRATIONS, "view integrations")
        with self.ctx.db.session(readonly=True) as s:
            integration = _load(s, integration_id)
            return _impact(s, integration)

    # -- changes ---------------------------------------------------------------------------

    def create(self, actor: Actor, spec: IntegrationSpec) -> IntegrationView:
        """Create an integration; InvalidInput per field, Conflict when the name is taken."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "create integrations")
        state = _validated(_spec_state(spec))
        with _name_guarded_session(self.ctx, state.name) as s:
            _check_name_free(s, state.name, None)
            now = self.ctx.now()
            integration = Integration(created_at=now, updated_at=now)
            self._write(integration, state, None)
            s.add(integration)
            s.flush()
            view = _view(integration)
            record_audit(s, actor, "integration.created", "integration", integration.id, None,
                         _audit_dicts(None, view)[1])
            return view

    def update(self, actor: Actor, integration_id: int,
               spec_changes: IntegrationChanges | Mapping[str, Any]) -> IntegrationView:
        """Change some settings (None keeps; for secrets "" clears, a value replaces)."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "edit integrations")
        return self._update(actor, integration_id, _as_changes(spec_changes))[0]

    def apply(self, actor: Actor, spec: IntegrationSpec) -> ApplyResult:
        """Create the integration named ``spec.name`` or make the existing one match ``spec``
        (secrets given as None are kept). Idempotent: re-applying changes nothing."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "create or edit integrations")
        with self.ctx.db.session(readonly=True) as s:
            existing = s.scalar(select(Integration.id).where(
                Integration.name_key == _name_key(spec.name)))
        if existing is None:
            return ApplyResult(self.create(actor, spec), "created")
        changes = IntegrationChanges(**{
            f.name: getattr(spec, f.name) for f in fields(IntegrationChanges)})
        view, changed = self._update(actor, existing, changes)
        return ApplyResult(view, "updated" if changed else "unchanged", changed)

    def activate(self, actor: Actor, integration_id: int) -> IntegrationView:
        """Turn lookups to it back on; its dormant links come back (profiles are refreshed
        when opened, having no data from it)."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "activate integrations")
        return self._set_active(actor, integration_id, True)

    def deactivate(self, actor: Actor, integration_id: int) -> IntegrationView:
        """Stop all lookups to it and remove its pulled data from every profile; links stay,
        dormant. See ``impact`` for what this touches."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "deactivate integrations")
        return self._set_active(actor, integration_id, False)

    def delete(self, actor: Actor, integration_id: int) -> Impact:
        """Delete it with its links, outcomes, suppressions and pulled data (its exchanges are
        kept, detached). Returns what was removed."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "delete integrations")
        with self.ctx.db.session() as s:
            integration = _load(s, integration_id)
            impact = _impact(s, integration)
            before = _view(integration).display()
            for model in (AutolinkOutcome, Suppression, PulledData, Link):
                s.execute(delete(model).where(model.integration_id == integration.id))
            s.execute(update(ExchangeRecord).where(
                ExchangeRecord.integration_id == integration.id).values(integration_id=None))
            s.delete(integration)
            record_audit(s, actor, "integration.deleted", "integration", integration_id, before,
                         {"links_removed": impact.links,
                          "profiles_with_data_removed": impact.profiles_with_data,
                          "suppressions_removed": impact.suppressions,
                          "outcomes_removed": impact.outcomes})
            return impact

    def set_autolink(self, actor: Actor, integration_id: int, enabled: bool,
                     fields: Sequence[str]) -> IntegrationView:
        """Turn auto-linking on or off and choose its fields (subset of email, mobile)."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "change auto-linking")
        problems: dict[str, str] = {}
        clean = _autolink_fields(problems, fields)
        _bool(problems, "enabled", enabled)
        _require_autolink_field(problems, enabled, clean)
        if problems:
            raise InvalidInput(problems)
        with self.ctx.db.session() as s:
            integration = _load(s, integration_id)
            before = _view(integration)
            if (integration.autolink_enabled, tuple(integration.autolink_fields)) == (
                    enabled, clean):
                return before
            integration.autolink_enabled = enabled
            integration.autolink_fields = list(clean)
            integration.updated_at = self.ctx.now()
            s.flush()
            after = _view(integration)
            record_audit(s, actor, "integration.autolink_changed", "integration",
                         integration.id,
                         {"autolink_enabled": before.autolink_enabled,
                          "autolink_fields": list(before.autolink_fields)},
                         {"autolink_enabled": after.autolink_enabled,
                          "autolink_fields": list(after.autolink_fields)})
            return after

    def test_connection(self, actor: Actor, integration_id: int, email: str | None = None,
                        phone: str | None = None) -> StoredExchange:
        """Send one BASIC probe search (the email and/or phone given, else a test email),
        store it with trigger TEST and return it. Works on inactive integrations too."""
        actor.require(Permission.TEST_INTEGRATIONS, "test integrations")
        with self.ctx.db.session(readonly=True) as s:
            integration = _load(s, integration_id)
            try:
                target = target_for(integration, self.ctx.secrets)
            except InvalidTarget as exc:
                raise InvalidInput({"settings": str(exc)}) from None
            keys = {a["attribute"] for a in integration.search_query_attributes}
        query: dict[str, str] = {}
        if email and email.strip():
            query["emails" if "emails" in keys and "email" not in keys else "email"] = email
        if phone and phone.strip():
            query["phones" if "phones" in keys and "phone" not in keys else "phone"] = phone
        request = search_request(None, query or {"email": TEST_EMAIL})
        exchange = self.ctx.client.lookup_sync(target, request, kind=RequestKind.SEARCH,
                                               trigger=Trigger.TEST)
        with self.ctx.db.session() as s:
            record = record_exchange(s, exchange, integration_id=integration_id,
                                     customer_id=None, actor=actor.username)
            return stored_exchange(record)

    # -- helpers ---------------------------------------------------------------------------

    def _update(self, actor: Actor, integration_id: int, changes: IntegrationChanges
                ) -> tuple[IntegrationView, tuple[str, ...]]:
        with _name_guarded_session(self.ctx, changes.name or "") as s:
            integration = _load(s, integration_id)
            current = _state_of(integration, self.ctx.secrets)
            wanted = _validated(_apply_changes(current, changes), current.headers)
            changed = _changed_settings(current, wanted)
            if not changed:
                return _view(integration), ()
            if "name" in changed:
                _check_name_free(s, wanted.name, integration.id)
            before = _view(integration)
            self._write(integration, wanted, current)
            integration.updated_at = self.ctx.now()
            if "active" in changed and not wanted.active:
                s.execute(delete(PulledData).where(PulledData.integration_id == integration.id))
            s.flush()
            after = _view(integration)
            old, new = _audit_dicts(before, after, _secrets_changed(current, wanted))
            record_audit(s, actor, "integration.updated", "integration", integration.id,
                         old, new)
            return after, changed

    def _set_active(self, actor: Actor, integration_id: int, active: bool) -> IntegrationView:
        with self.ctx.db.session() as s:
            integration = _load(s, integration_id)
            if integration.active == active:
                return _view(integration)
            removed = _impact(s, integration).profiles_with_data
            if not active:
                s.execute(delete(PulledData).where(PulledData.integration_id == integration.id))
            integration.active = active
            integration.updated_at = self.ctx.now()
            s.flush()
            after: dict[str, Any] = {"active": active}
            if not active:
                after["pulled_data_removed_from_profiles"] = removed
            record_audit(s, actor, "integration.activated" if active
                         else "integration.deactivated", "integration", integration.id,
                         {"active": not active}, after)
            return _view(integration)

    def _write(self, integration: Integration, state: _State, current: _State | None) -> None:
        """Copy ``state`` onto the row, encrypting secrets (unchanged ones keep their token)."""
        box = self.ctx.secrets
        integration.name = state.name
        integration.name_key = _name_key(state.name)
        integration.url = state.url
        integration.username = state.username
        integration.realm = state.realm
        if current is None or current.password != state.password:
            integration.password_enc = box.encrypt(state.password)
        if current is None or current.signing_key != state.signing_key:
            integration.signing_key_enc = box.encrypt(state.signing_key)
        if current is None or current.headers != state.headers:
            integration.headers = [
                {"name": h.name, "value_enc": box.encrypt(h.value or ""), "secret": True}
                if h.secret else {"name": h.name, "value": h.value or "", "secret": False}
                for h in state.headers]
        integration.search_query_attributes = [
            {"attribute": a.attribute, "label": a.label} for a in state.search_query_attributes]
        integration.search_results_attributes = [
            {"attribute": a.attribute, "label": a.label}
            for a in state.search_results_attributes]
        integration.autolink_enabled = state.autolink_enabled
        integration.autolink_fields = list(state.autolink_fields)
        integration.overwrite_existing = state.overwrite_existing
        integration.timeout_s = state.timeout_s
        integration.active = state.active


def _name_key(name: str) -> str:
    return name.strip().lower()


def _name_taken(name: str) -> str:
    return (f"an integration named {name} already exists (names are compared "
            "ignoring case); pick another name or edit that one")


def _check_name_free(s: Session, name: str, own_id: int | None) -> None:
    other = s.scalar(select(Integration.id).where(Integration.name_key == _name_key(name)))
    if other is not None and other != own_id:
        raise InvalidInput({"name": _name_taken(name)})


def _load(s: Session, integration_id: int) -> Integration:
    integration = s.get(Integration, integration_id)
    if integration is None:
        raise NotFound(f"no integration with id {integration_id}; it may have been deleted")
    return integration


def _load_by_name(s: Session, name: str) -> Integration:
    integration = s.scalar(select(Integration).where(Integration.name_key == _name_key(name)))
    if integration is None:
        raise NotFound(f"no integration named {name.strip()!r}; see 'linker integrations list'")
    return integration


def _impact(s: Session, integration: Integration) -> Impact:
    def count(model: type[Any]) -> int:
        return int(s.scalar(select(func.count()).select_from(model).where(
            model.integration_id == integration.id)) or 0)

    return Impact(integration_id=integration.id, integration_name=integration.name,
                  profiles_with_data=count(PulledData), links=count(Link),
                  suppressions=count(Suppression), outcomes=count(AutolinkOutcome))
