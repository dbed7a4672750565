"""Agents choose systems in the workbench without seeing integration settings."""

from __future__ import annotations

import dataclasses

import pytest

from linker.core.permissions import Actor, Role
from linker.services.context import ServiceContext
from linker.services.linking import LinkingService
from linker.store.models import Integration


@pytest.mark.parametrize("role", list(Role))
def test_every_role_lists_systems_without_settings(ctx: ServiceContext, role: Role) -> None:
    with ctx.db.session() as s:
        s.add_all([Integration(name="Shop", name_key="shop", url="https://shop.example/",
                               username="u", password_enc=ctx.secrets.encrypt("pw-123456")),
                   Integration(name="Archive", name_key="archive", url="https://a.example/",
                               active=False)])
    systems = LinkingService(ctx).systems(Actor("someone", role))
    assert [(s.name, s.active) for s in systems] == [("Archive", False), ("Shop", True)]
    assert {f.name for f in dataclasses.fields(systems[0])} == {"id", "name", "active"}
