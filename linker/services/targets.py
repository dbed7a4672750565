"""Turning an integration's config into the adaptor target the lookup client calls."""

from __future__ import annotations

from linker.core.integration_config import IntegrationConfig
from linker.lookup import AdaptorTarget
from linker.store.integrations import config_of
from linker.store.models import Integration
from linker.store.secretbox import SecretBox


def target_of(config: IntegrationConfig) -> AdaptorTarget:
    """The AdaptorTarget of a config (raises InvalidTarget for settings that cannot work)."""
    return AdaptorTarget(
        url=config.url, name=config.name, username=config.username, password=config.password,
        realm=config.realm, signing_key=config.signing_key, headers=config.header_values(),
        secret_headers=config.secret_header_names(), timeout_s=config.timeout_s)


def target_for(integration: Integration, secrets: SecretBox) -> AdaptorTarget:
    """The AdaptorTarget of a stored integration, secrets decrypted (never shown, only sent)."""
    return target_of(config_of(integration, secrets))
