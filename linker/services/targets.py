"""Turning a stored integration into an adaptor target the lookup client can call."""

from __future__ import annotations

from linker.lookup import AdaptorTarget
from linker.store.models import Integration
from linker.store.secretbox import SecretBox


def header_values(integration: Integration, secrets: SecretBox) -> dict[str, str]:
    """The integration's extra HTTP headers with secret values decrypted."""
    values = {}
    for row in integration.headers:
        value = secrets.decrypt(row.get("value_enc", "")) if row.get("secret") else row.get(
            "value", "")
        values[str(row["name"])] = str(value)
    return values


def target_for(integration: Integration, secrets: SecretBox) -> AdaptorTarget:
    """The AdaptorTarget for an integration, secrets decrypted (never shown, only sent)."""
    return AdaptorTarget(
        url=integration.url,
        name=integration.name,
        username=integration.username,
        password=secrets.decrypt(integration.password_enc),
        realm=integration.realm,
        signing_key=secrets.decrypt(integration.signing_key_enc),
        headers=header_values(integration, secrets),
        secret_headers=frozenset(str(r["name"]) for r in integration.headers if r.get("secret")),
        timeout_s=integration.timeout_s,
    )
