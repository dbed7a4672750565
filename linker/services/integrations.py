"""Integrations: create, update, (de)activate, delete, auto-link settings, test connection.

Secrets (password, signing key, values of headers marked secret) are encrypted with the
context's SecretBox before they are stored and are never put in a view or an audit event:
views carry ``password_set`` / ``signing_key_set`` flags and secret header rows without value.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.contract import LookupRequest, RequestKind, search_request
from linker.core.integration_config import (
    DEFAULT_SEARCH_QUERY_ATTRIBUTES,
    DEFAULT_TIMEOUT_S,
    MAX_CONCURRENT_CAP,
    MAX_RATE_CAP,
    MAX_TIMEOUT_S,
    MIN_TIMEOUT_S,
    NO_AUTOLINK_FIELD,
    SECRET_FIELDS,
    AttributeSpec,
    HeaderSpec,
    IntegrationChanges,
    IntegrationConfig,
    IntegrationSpec,
    SecretChange,
    autolink_fields_of,
    caps_text,
    changed_settings,
    is_loopback_host,
    require_autolink_field,
    secrets_changed,
    validate_config,
)
from linker.core.permissions import Actor, Permission
from linker.lookup.exchange import Exchange, Trigger
from linker.lookup.target import AdaptorTarget, InvalidTarget
from linker.lookup.urls import url_problem
from linker.services.audit import record_audit
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput, NotFound
from linker.services.targets import target_of
from linker.store import integrations as integrations_store
from linker.store.exchanges import StoredExchange, record_exchange, stored_exchange
from linker.store.integrations import Dependents
from linker.store.models import Integration
from linker.store.secretbox import SecretBox

__all__ = [
    "DEFAULT_SEARCH_QUERY_ATTRIBUTES", "DEFAULT_TIMEOUT_S", "MAX_CONCURRENT_CAP", "MAX_RATE_CAP",
    "MAX_TIMEOUT_S", "MIN_TIMEOUT_S", "NO_AUTOLINK_FIELD", "TEST_EMAIL", "ApplyResult",
    "AttributeSpec", "AttributeView", "HeaderSpec", "HeaderView", "Impact", "IntegrationChanges",
    "IntegrationService", "IntegrationSpec", "IntegrationView", "SecretChange", "caps_text",
    "is_loopback_host", "probe_request",
]

TEST_EMAIL = "linker.connection.test@example.com"
"""Email of the probe search when the tester gives neither an email nor a phone."""

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
    max_concurrent_requests: int | None = None
    max_requests_per_second: float | None = None

    @property
    def rate_caps_text(self) -> str:
        """The caps in words, e.g. ``4 at once, 10 per second`` (``no cap`` without any)."""
        return caps_text(self.max_concurrent_requests, self.max_requests_per_second)

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
            "max_concurrent_requests": self.max_concurrent_requests,
            "max_requests_per_second": self.max_requests_per_second,
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



# -- helpers ---------------------------------------------------------------------------------


def _audit_dicts(before: IntegrationView | None, after: IntegrationView,
                 secrets_changed: Sequence[str] = ()
                 ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Before/after display dicts holding only what differs (everything on create); a secret
    replaced by another value shows as "replaced", never as its value."""
    new = after.display()
    for key in SECRET_FIELDS:
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


@contextmanager
def _name_guarded_session(ctx: ServiceContext, name: str) -> Iterator[Session]:
    """A write session turning a unique-name race into a Conflict naming the integration."""
    try:
        with ctx.db.session() as s:
            yield s
    except IntegrityError:
        raise Conflict(_name_taken(name.strip())) from None


def _view(integration: Integration) -> IntegrationView:
    """The row as shown: its settings without secrets, and whether each secret is set."""
    shown = integrations_store.config_of(integration, None)
    return IntegrationView(
        id=integration.id, name=shown.name, url=shown.url, username=shown.username,
        password_set=bool(integration.password_enc), realm=shown.realm,
        signing_key_set=bool(integration.signing_key_enc),
        headers=tuple(HeaderView(h.name, h.value, h.secret) for h in shown.headers),
        search_query_attributes=tuple(AttributeView(a.attribute, a.label)
                                      for a in shown.search_query_attributes),
        search_results_attributes=tuple(AttributeView(a.attribute, a.label)
                                        for a in shown.search_results_attributes),
        autolink_enabled=shown.autolink_enabled, autolink_fields=shown.autolink_fields,
        overwrite_existing=shown.overwrite_existing, timeout_s=shown.timeout_s,
        active=shown.active, created_at=integration.created_at,
        updated_at=integration.updated_at,
        max_concurrent_requests=shown.max_concurrent_requests,
        max_requests_per_second=shown.max_requests_per_second)


class IntegrationStore(Protocol):
    """What the service needs from the database (``linker.store.integrations``; tests pass an
    in-memory fake)."""

    def name_key(self, name: str) -> str: ...
    def load(self, s: Session, integration_id: int) -> Integration: ...
    def load_by_name(self, s: Session, name: str) -> Integration: ...
    def id_named(self, s: Session, name: str) -> int | None: ...
    def ids_named(self, s: Session, names: Sequence[str]) -> dict[str, int]: ...
    def all_by_name(self, s: Session) -> builtins.list[Integration]: ...
    def dependents(self, s: Session, integration_id: int) -> Dependents: ...
    def drop_pulled_data(self, s: Session, integration_id: int) -> None: ...
    def delete_with_dependents(self, s: Session, integration: Integration) -> None: ...
    def config_of(self, integration: Integration, box: SecretBox | None
                  ) -> IntegrationConfig: ...
    def add(self, s: Session, config: IntegrationConfig, box: SecretBox, now: datetime
            ) -> Integration: ...
    def save_config(self, s: Session, integration: Integration, config: IntegrationConfig,
                    box: SecretBox, current: IntegrationConfig, now: datetime) -> None: ...
    def set_autolink(self, s: Session, integration: Integration, enabled: bool,
                     fields: Sequence[str], now: datetime) -> None: ...
    def set_active(self, s: Session, integration: Integration, active: bool, now: datetime
                   ) -> None: ...


class IntegrationService:
    """Configure the external systems Linker links profiles to."""

    def __init__(self, ctx: ServiceContext, store: IntegrationStore | None = None) -> None:
        self.ctx = ctx
        self.store: IntegrationStore = store or integrations_store

    # -- reads -----------------------------------------------------------------------------

    def list(self, actor: Actor) -> list[IntegrationView]:
        """Every integration, by name (no secret values)."""
        actor.require(Permission.VIEW_INTEGRATIONS, "view integrations")
        with self.ctx.db.session(readonly=True) as s:
            return [_view(i) for i in self.store.all_by_name(s)]

    def get(self, actor: Actor, integration_id: int) -> IntegrationView:
        """One integration by id; NotFound when there is none."""
        actor.require(Permission.VIEW_INTEGRATIONS, "view integrations")
        with self.ctx.db.session(readonly=True) as s:
            return _view(self.store.load(s, integration_id))

    def get_by_name(self, actor: Actor, name: str) -> IntegrationView:
        """One integration by name (case-insensitive); NotFound when there is none."""
        actor.require(Permission.VIEW_INTEGRATIONS, "view integrations")
        with self.ctx.db.session(readonly=True) as s:
            return _view(self.store.load_by_name(s, name))

    def ids_named(self, actor: Actor, names: Sequence[str]) -> builtins.list[int]:
        """Ids of the named integrations (ignoring case), in the order given; NotFound names
        the unknown ones."""
        actor.require(Permission.VIEW_INTEGRATIONS, "view integrations")
        keys = {self.store.name_key(name): name for name in names}
        with self.ctx.db.session(readonly=True) as s:
            found = self.store.ids_named(s, list(keys.values()))
        missing = [name for key, name in keys.items() if key not in found]
        if missing:
            raise NotFound(f"no integration named {', '.join(map(repr, missing))}; "
                           "`linker integrations list` shows them")
        return [found[key] for key in keys]

    def impact(self, actor: Actor, integration_id: int) -> Impact:
        """How many profiles have data from it and how many links, suppressions and outcomes
        it has: what deactivation or deletion would touch."""
        actor.require(Permission.VIEW_INTEGRATIONS, "view integrations")
        with self.ctx.db.session(readonly=True) as s:
            integration = self.store.load(s, integration_id)
            return _impact(self.store, s, integration)

    # -- changes ---------------------------------------------------------------------------

    def create(self, actor: Actor, spec: IntegrationSpec) -> IntegrationView:
        """Create an integration; InvalidInput per field, Conflict when the name is taken."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "create integrations")
        config = _validated(IntegrationConfig.of_spec(spec))
        with _name_guarded_session(self.ctx, config.name) as s:
            _check_name_free(self.store, s, config.name, None)
            integration = self.store.add(s, config, self.ctx.secrets, self.ctx.now())
            view = _view(integration)
            record_audit(s, actor, "integration.created", "integration", integration.id, None,
                         _audit_dicts(None, view)[1])
            return view

    def update(self, actor: Actor, integration_id: int,
               spec: IntegrationSpec | IntegrationChanges | Mapping[str, Any]
               ) -> IntegrationView:
        """Make the integration match ``spec``, every setting as given (secrets as their
        ``SecretChange``), as ``apply`` does; or change only some settings (IntegrationChanges
        or a mapping: None keeps; for secrets "" clears, a value replaces)."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "edit integrations")
        return self._update(actor, integration_id, IntegrationChanges.of(spec))[0]

    def apply(self, actor: Actor, spec: IntegrationSpec) -> ApplyResult:
        """Create the integration named ``spec.name`` or make the existing one match ``spec``
        (secrets given as None are kept). Idempotent: re-applying changes nothing."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "create or edit integrations")
        with self.ctx.db.session(readonly=True) as s:
            existing = self.store.id_named(s, spec.name)
        if existing is None:
            return ApplyResult(self.create(actor, spec), "created")
        view, changed = self._update(actor, existing, IntegrationChanges.of(spec))
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
            integration = self.store.load(s, integration_id)
            impact = _impact(self.store, s, integration)
            before = _view(integration).display()
            self.store.delete_with_dependents(s, integration)
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
        clean = autolink_fields_of(problems, fields)
        if not isinstance(enabled, bool):
            problems["enabled"] = f"expected true or false, got {enabled!r}"
        require_autolink_field(problems, enabled, clean)
        if problems:
            raise InvalidInput(problems)
        with self.ctx.db.session() as s:
            integration = self.store.load(s, integration_id)
            before = _view(integration)
            if (integration.autolink_enabled, tuple(integration.autolink_fields)) == (
                    enabled, clean):
                return before
            self.store.set_autolink(s, integration, enabled, clean, self.ctx.now())
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
            config = self.store.config_of(self.store.load(s, integration_id), self.ctx.secrets)
        exchange = self.ctx.client.lookup_sync(
            _probe_target(config, integration_id), probe_request(config, email, phone),
            kind=RequestKind.SEARCH, trigger=Trigger.TEST)
        with self.ctx.db.session() as s:
            record = record_exchange(s, exchange, integration_id=integration_id,
                                     customer_id=None, actor=actor.username)
            return stored_exchange(record)

    def test_unsaved(self, actor: Actor, spec: IntegrationSpec, email: str | None = None,
                     phone: str | None = None) -> Exchange:
        """Test connection before save: ``spec`` validated as ``create`` validates it
        (InvalidInput per field), then one BASIC probe search sent with those settings.
        Nothing is stored, neither the integration nor the exchange (the exchange comes back
        masked, as the client records every exchange). Not being stored, it has no rate-cap
        budget yet: the caps in ``spec`` are validated but not applied to this one request."""
        actor.require(Permission.MANAGE_INTEGRATIONS, "test an integration before saving it")
        actor.require(Permission.TEST_INTEGRATIONS, "test integrations")
        config = _validated(IntegrationConfig.of_spec(spec))
        return self.ctx.client.lookup_sync(
            _probe_target(config, None), probe_request(config, email, phone),
            kind=RequestKind.SEARCH, trigger=Trigger.TEST)

    # -- helpers ---------------------------------------------------------------------------

    def _update(self, actor: Actor, integration_id: int, changes: IntegrationChanges
                ) -> tuple[IntegrationView, tuple[str, ...]]:
        with _name_guarded_session(self.ctx, changes.name or "") as s:
            integration = self.store.load(s, integration_id)
            current = self.store.config_of(integration, self.ctx.secrets)
            wanted = _validated(current.changed(changes), current.headers)
            changed = changed_settings(current, wanted)
            if not changed:
                return _view(integration), ()
            if "name" in changed:
                _check_name_free(self.store, s, wanted.name, integration.id)
            before = _view(integration)
            if "active" in changed and not wanted.active:
                self.store.drop_pulled_data(s, integration.id)
            self.store.save_config(s, integration, wanted, self.ctx.secrets, current,
                                   self.ctx.now())
            after = _view(integration)
            old, new = _audit_dicts(before, after, secrets_changed(current, wanted))
            record_audit(s, actor, "integration.updated", "integration", integration.id,
                         old, new)
            return after, changed

    def _set_active(self, actor: Actor, integration_id: int, active: bool) -> IntegrationView:
        with self.ctx.db.session() as s:
            integration = self.store.load(s, integration_id)
            if integration.active == active:
                return _view(integration)
            removed = _impact(self.store, s, integration).profiles_with_data
            if not active:
                self.store.drop_pulled_data(s, integration.id)
            self.store.set_active(s, integration, active, self.ctx.now())
            after: dict[str, Any] = {"active": active}
            if not active:
                after["pulled_data_removed_from_profiles"] = removed
            record_audit(s, actor, "integration.activated" if active
                         else "integration.deactivated", "integration", integration.id,
                         {"active": not active}, after)
            return _view(integration)


def probe_request(config: IntegrationConfig, email: str | None, phone: str | None
                  ) -> LookupRequest:
    """The BASIC search of Test connection: the email and/or phone given (under ``emails`` /
    ``phones`` when ``config``'s query attributes name only those), else the test email."""
    keys = {a.attribute for a in config.search_query_attributes}
    query: dict[str, str] = {}
    if email and email.strip():
        only_plural = "emails" in keys and "email" not in keys
        query["emails" if only_plural else "email"] = email
    if phone and phone.strip():
        only_plural = "phones" in keys and "phone" not in keys
        query["phones" if only_plural else "phone"] = phone
    return search_request(None, query or {"email": TEST_EMAIL})


def _probe_target(config: IntegrationConfig, integration_id: int | None) -> AdaptorTarget:
    """The target a connection test sends to; settings that cannot work are bad input."""
    try:
        return target_of(config, integration_id)
    except InvalidTarget as exc:
        raise InvalidInput({"settings": str(exc)}) from None


def _name_taken(name: str) -> str:
    return (f"an integration named {name} already exists (names are compared "
            "ignoring case); pick another name or edit that one")


def _check_name_free(store: IntegrationStore, s: Session, name: str, own_id: int | None
                     ) -> None:
    other = store.id_named(s, name)
    if other is not None and other != own_id:
        raise InvalidInput({"name": _name_taken(name)})


def _impact(store: IntegrationStore, s: Session, integration: Integration) -> Impact:
    counts = store.dependents(s, integration.id)
    return Impact(integration_id=integration.id, integration_name=integration.name,
                  profiles_with_data=counts.profiles_with_data, links=counts.links,
                  suppressions=counts.suppressions, outcomes=counts.outcomes)


def _validated(raw: IntegrationConfig, stored_headers: Sequence[HeaderSpec] = ()
               ) -> IntegrationConfig:
    """The config checked by the core rules; its URL also by the transport's parse."""
    config = validate_config(raw, stored_headers)
    problem = url_problem(config.url)
    if problem is not None:
        raise InvalidInput({"url": problem})
    return config
