"""Turning an integration's config into the adaptor target the lookup client calls."""

from __future__ import annotations

from linker.core.integration_config import IntegrationConfig
from linker.lookup import AdaptorTarget
from linker.lookup.ratelimit import RateCap
from linker.store.integrations import config_of
from linker.store.models import Integration
from linker.store.secretbox import SecretBox


def target_of(config: IntegrationConfig, integration_id: int | None = None) -> AdaptorTarget:
    """The AdaptorTarget of a config (raises InvalidTarget for settings that cannot work).

    ``integration_id`` names the budget its rate caps share; without it (a config not stored
    yet) the target has no cap.
    """
    return AdaptorTarget(
        url=config.url, name=config.name, username=config.username, password=config.password,
        realm=config.realm, signing_key=config.signing_key, headers=config.header_values(),
        secret_headers=config.secret_header_names(), timeout_s=config.timeout_s,
        rate_cap=rate_cap_of(config, integration_id))


def rate_cap_of(config: IntegrationConfig, integration_id: int | None) -> RateCap | None:
    """The caps on requests in flight and per second of integration ``integration_id`` (None
    when it has none, or has no id yet)."""
    if integration_id is None or not config.rate_capped:
        return None
    return RateCap(integration_id, config.max_concurrent_requests or None,
                   config.max_requests_per_second or None)


def target_for(integration: Integration, secrets: SecretBox) -> AdaptorTarget:
    """The AdaptorTarget of a stored integration, secrets decrypted (never shown, only sent)."""
    return target_of(config_of(integration, secrets), integration.id)
