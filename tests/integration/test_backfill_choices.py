"""``BackfillService.eligible``: the integrations the Auto-linking page offers a backfill for
(the rule moved down from the page), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from linker.core.permissions import SYSTEM, Actor, Role
from linker.services.backfill import BackfillService
from linker.services.errors import PermissionDenied
from tests.integration.world import World


def test_only_active_integrations_with_auto_linking_on_and_a_field(world: World) -> None:
    travel = world.add_integration("Travel", "travel", autolink_fields=["mobile"])
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    world.add_integration("Manual", "shop")  # auto-linking off
    world.add_integration("Asleep", "shop", autolink_fields=["email"], active=False)
    world.add_integration("Odd", "shop", autolink_fields=["fax"])  # on, but no known field
    choices = BackfillService(world.ctx).eligible(SYSTEM)
    assert [(c.id, c.name) for c in choices] == [(shop, "Shop"), (travel, "Travel")]


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.AGENT, Role.SUPPORT_LEAD])
def test_only_admins_see_backfill_choices(world: World, role: Role) -> None:
    with pytest.raises(PermissionDenied):
        BackfillService(world.ctx).eligible(Actor("someone", role))
