"""The read-model cache of ``dashboard.state``: a write drops what it may have changed, for
every session, and a profile write (``PROFILE_WRITE``) keeps the integration settings readers.

The readers are called directly (Streamlit's caches work without a script run), on a real
SQLite database; the writes go through the services, as the pages make them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dashboard import state
from linker.core.permissions import SYSTEM, Actor, Role
from linker.services.facade import Services
from tests.apptest.conftest import make_integration

ADMIN = Actor("state-admin", Role.ADMIN)


def names(found: Sequence[Any]) -> set[str]:
    """The ``name`` of each item."""
    return {item.name for item in found}


def test_a_profile_write_drops_the_profile_readers_and_keeps_the_settings_ones(
        services: Services, shop_url: str) -> None:
    shop = make_integration(services, "Shop", shop_url)
    services.customers.create(SYSTEM, "Ada Lovelace", ["ada@example.com"])
    assert names(state.systems(ADMIN)) == {"Shop"}
    assert names(state.find_customers(ADMIN)) == {"Ada Lovelace"}

    services.integrations.update(SYSTEM, shop.id, {"name": "Shop renamed"})
    services.customers.create(SYSTEM, "Grace Hopper", ["grace@example.com"])
    assert names(state.find_customers(ADMIN)) == {"Ada Lovelace"}  # cached until changed
    state.changed(state.PROFILE_WRITE)
    assert names(state.find_customers(ADMIN)) == {"Ada Lovelace", "Grace Hopper"}
    assert names(state.systems(ADMIN)) == {"Shop"}  # a profile write cannot rename it
    state.changed()
    assert names(state.systems(ADMIN)) == {"Shop renamed"}


def test_a_scoped_write_is_seen_by_another_actor_s_cached_reads(services: Services) -> None:
    other = Actor("state-agent", Role.AGENT)
    services.customers.create(SYSTEM, "Ada Lovelace", ["ada@example.com"])
    assert names(state.find_customers(other)) == {"Ada Lovelace"}
    services.customers.create(SYSTEM, "Grace Hopper", ["grace@example.com"])
    state.changed(state.PROFILE_WRITE)  # made by ADMIN's session; the cache is the server's
    assert names(state.find_customers(other)) == {"Ada Lovelace", "Grace Hopper"}
