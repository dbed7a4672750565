"""The integrations aggregate in the database: loads, the name key, its config in and out.

The one place an integration row is read into an ``IntegrationConfig`` (``config_of``: with
its secrets decrypted, or without them for display) and a config is encrypted onto a row
(``write_config``, through ``add`` and ``save_config``). Services call these; they hold no
SQL and do not touch the session.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from linker.core.errors import NotFound
from linker.core.integration_config import AttributeSpec, HeaderSpec, IntegrationConfig
from linker.store.models import (
    AutolinkOutcome,
    ExchangeRecord,
    Integration,
    Link,
    PulledData,
    Suppression,
)
from linker.store.secretbox import SecretBox


def name_key(name: str) -> str:
    """How integration names are compared: trimmed, ignoring case."""
    return name.strip().lower()


def load(s: Session, integration_id: int) -> Integration:
    """The integration with ``integration_id``; NotFound when there is none."""
    integration = s.get(Integration, integration_id)
    if integration is None:
        raise NotFound(f"no integration with id {integration_id}; it may have been deleted")
    return integration


def find(s: Session, integration_id: int) -> Integration | None:
    """The integration with ``integration_id``, or None."""
    return s.get(Integration, integration_id)


def load_by_name(s: Session, name: str) -> Integration:
    """The integration named ``name`` (ignoring case); NotFound when there is none."""
    integration = s.scalar(select(Integration).where(Integration.name_key == name_key(name)))
    if integration is None:
        raise NotFound(f"no integration named {name.strip()!r}; see 'linker integrations list'")
    return integration


def id_named(s: Session, name: str) -> int | None:
    """The id of the integration named ``name`` (ignoring case), or None."""
    return s.scalar(select(Integration.id).where(Integration.name_key == name_key(name)))


def ids_named(s: Session, names: Sequence[str]) -> dict[str, int]:
    """Name key → id of the integrations among ``names`` (compared ignoring case)."""
    keys = {name_key(n) for n in names}
    rows = s.execute(select(Integration.name_key, Integration.id)
                     .where(Integration.name_key.in_(keys)))
    return {str(key): int(i) for key, i in rows}


def names_of(s: Session, ids: Sequence[int]) -> dict[int, str]:
    """Id → name of the integrations among ``ids`` (missing ids are left out)."""
    rows = s.execute(select(Integration.id, Integration.name).where(Integration.id.in_(ids)))
    return {int(i): str(name) for i, name in rows}


def all_by_name(s: Session) -> list[Integration]:
    """Every integration, ordered by name."""
    return list(s.scalars(select(Integration).order_by(Integration.name_key)))


def with_autolink_on(s: Session, ids: Collection[int] | None = None) -> list[Integration]:
    """Active integrations with auto-linking on (optionally only ``ids``), by name."""
    query = select(Integration).where(Integration.active.is_(True),
                                      Integration.autolink_enabled.is_(True))
    if ids is not None:
        query = query.where(Integration.id.in_(list(ids)))
    return list(s.scalars(query.order_by(Integration.name_key)))


def active_ids(s: Session, ids: Sequence[int] | None = None) -> list[int]:
    """Ids of the active integrations (among ``ids`` when given), in id order."""
    query = select(Integration.id).where(Integration.active.is_(True))
    if ids is not None:
        query = query.where(Integration.id.in_(ids))
    return list(s.scalars(query.order_by(Integration.id)))


@dataclass(frozen=True)
class Dependents:
    """How many rows of each kind hang off one integration."""

    profiles_with_data: int
    links: int
    suppressions: int
    outcomes: int


def dependents(s: Session, integration_id: int) -> Dependents:
    """Counts of its pulled data, links, suppressions and auto-link outcomes."""
    def count(model: type[Any]) -> int:
        return int(s.scalar(select(func.count()).select_from(model).where(
            model.integration_id == integration_id)) or 0)

    return Dependents(profiles_with_data=count(PulledData), links=count(Link),
                      suppressions=count(Suppression), outcomes=count(AutolinkOutcome))


def drop_pulled_data(s: Session, integration_id: int) -> None:
    """Remove the data pulled from it from every profile."""
    s.execute(delete(PulledData).where(PulledData.integration_id == integration_id))


def delete_with_dependents(s: Session, integration: Integration) -> None:
    """Delete it with its links, outcomes, suppressions and pulled data; its exchanges stay,
    detached."""
    for model in (AutolinkOutcome, Suppression, PulledData, Link):
        s.execute(delete(model).where(model.integration_id == integration.id))
    s.execute(update(ExchangeRecord).where(
        ExchangeRecord.integration_id == integration.id).values(integration_id=None))
    s.delete(integration)


def config_of(integration: Integration, box: SecretBox | None) -> IntegrationConfig:
    """The integration's settings with its secrets decrypted (memory only, never shown);
    with ``box`` None without them, for display: password and signing key "", the value of
    a secret header None."""
    def reveal(token: str) -> str:
        return box.decrypt(token) if box is not None else ""

    return IntegrationConfig(
        name=integration.name, url=integration.url, username=integration.username,
        password=reveal(integration.password_enc), realm=integration.realm,
        signing_key=reveal(integration.signing_key_enc),
        headers=tuple(
            HeaderSpec(str(r["name"]),
                       (reveal(r.get("value_enc", "")) if box is not None else None)
                       if r.get("secret") else str(r.get("value", "")), bool(r.get("secret")))
            for r in integration.headers),
        search_query_attributes=tuple(AttributeSpec(str(r["attribute"]), str(r["label"]))
                                      for r in integration.search_query_attributes),
        search_results_attributes=tuple(AttributeSpec(str(r["attribute"]), str(r["label"]))
                                        for r in integration.search_results_attributes),
        autolink_enabled=integration.autolink_enabled,
        autolink_fields=tuple(str(f) for f in integration.autolink_fields),
        overwrite_existing=integration.overwrite_existing, timeout_s=integration.timeout_s,
        active=integration.active, max_concurrent_requests=integration.max_concurrent_requests,
        max_requests_per_second=integration.max_requests_per_second)


def add(s: Session, config: IntegrationConfig, box: SecretBox, now: datetime) -> Integration:
    """A new integration row with ``config`` (secrets encrypted), added and flushed (it has
    its id)."""
    integration = Integration(created_at=now, updated_at=now)
    write_config(integration, config, box, None)
    s.add(integration)
    s.flush()
    return integration


def save_config(s: Session, integration: Integration, config: IntegrationConfig,
                box: SecretBox, current: IntegrationConfig, now: datetime) -> None:
    """Write ``config`` onto the row (``current``: what it held), stamp it and flush."""
    write_config(integration, config, box, current)
    integration.updated_at = now
    s.flush()


def set_autolink(s: Session, integration: Integration, enabled: bool, fields: Sequence[str],
                 now: datetime) -> None:
    """Turn auto-linking on or off with ``fields``, stamp the row and flush."""
    integration.autolink_enabled = enabled
    integration.autolink_fields = list(fields)
    integration.updated_at = now
    s.flush()


def set_active(s: Session, integration: Integration, active: bool, now: datetime) -> None:
    """(De)activate the row, stamp it and flush (its pulled data is ``drop_pulled_data``)."""
    integration.active = active
    integration.updated_at = now
    s.flush()


def write_config(integration: Integration, config: IntegrationConfig, box: SecretBox,
                 current: IntegrationConfig | None) -> None:
    """Copy ``config`` onto the row, encrypting secrets (unchanged ones keep their token)."""
    integration.name = config.name
    integration.name_key = name_key(config.name)
    integration.url = config.url
    integration.username = config.username
    integration.realm = config.realm
    if current is None or current.password != config.password:
        integration.password_enc = box.encrypt(config.password)
    if current is None or current.signing_key != config.signing_key:
        integration.signing_key_enc = box.encrypt(config.signing_key)
    if current is None or current.headers != config.headers:
        integration.headers = [
            {"name": h.name, "value_enc": box.encrypt(h.value or ""), "secret": True}
            if h.secret else {"name": h.name, "value": h.value or "", "secret": False}
            for h in config.headers]
    integration.search_query_attributes = [
        {"attribute": a.attribute, "label": a.label} for a in config.search_query_attributes]
    integration.search_results_attributes = [
        {"attribute": a.attribute, "label": a.label} for a in config.search_results_attributes]
    integration.autolink_enabled = config.autolink_enabled
    integration.autolink_fields = list(config.autolink_fields)
    integration.overwrite_existing = config.overwrite_existing
    integration.timeout_s = config.timeout_s
    integration.active = config.active
    integration.max_concurrent_requests = config.max_concurrent_requests or None
    integration.max_requests_per_second = config.max_requests_per_second or None
