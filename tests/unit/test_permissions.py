"""The role table and ``Actor.require`` (linker.core.permissions), without a database."""

from __future__ import annotations

import pytest

from linker.core.errors import ServiceError
from linker.core.permissions import ROLE_PERMISSIONS, SYSTEM, Actor, Permission, Role


def test_admin_holds_every_permission_and_the_system_actor_is_an_admin() -> None:
    assert ROLE_PERMISSIONS[Role.ADMIN] == frozenset(Permission)
    assert SYSTEM.role is Role.ADMIN and all(SYSTEM.can(p) for p in Permission)


@pytest.mark.parametrize(("role", "allowed", "refused"), [
    (Role.AGENT, Permission.LINK, Permission.MANAGE_INTEGRATIONS),
    (Role.DEVELOPER, Permission.REPLAY_EXCHANGES, Permission.EDIT_CUSTOMERS),
    (Role.SUPPORT_LEAD, Permission.VIEW_AUDIT, Permission.LINK),
])
def test_each_role_gets_only_its_permissions(role: Role, allowed: Permission,
                                             refused: Permission) -> None:
    actor = Actor("someone", role)
    assert actor.can(allowed) and not actor.can(refused)


def test_require_names_the_user_role_and_action() -> None:
    agent = Actor("ann", Role.AGENT)
    agent.require(Permission.LINK, "link a profile")  # allowed: no error
    with pytest.raises(ServiceError, match=r"ann \(agent\) may not delete an integration"):
        agent.require(Permission.MANAGE_INTEGRATIONS, "delete an integration")
