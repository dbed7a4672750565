"""Role matrix for the developer and lead tools: debugger, exchange log, replay, conformance,
scheduled probes, coverage and audit log. Every role × every public method of those services.

The scene is real (a Shop integration served in-process, a profile, a stored search exchange
and, for reading a card, a conformance run), so an allowed call must succeed outright; a
refused one raises PermissionDenied naming the role, and sends nothing to an adaptor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from linker.core.permissions import SYSTEM, Actor, Role
from linker.core.probes import ProbeSettingsInput
from linker.services.audit_log import AuditLogService
from linker.services.conformance import ConformanceService
from linker.services.coverage import CoverageService
from linker.services.debugger import DebuggerService
from linker.services.errors import PermissionDenied
from linker.services.exchange_log import ExchangeLogService
from linker.services.linking import LinkingService
from linker.services.probes import ProbeService
from linker.services.replay import ReplayService
from tests.integration.world import World, unique_record

A, D, G, L = Role.ADMIN, Role.DEVELOPER, Role.AGENT, Role.SUPPORT_LEAD
TOOLS = (A, D)
LEAD_VIEWS = (A, L)


@dataclass(frozen=True)
class Scene:
    world: World
    shop: int
    customer: str
    email: str
    external_id: str
    exchange: int
    run: int


def _scene(world: World, *, with_run: bool) -> Scene:
    person = unique_record()
    email = person.emails[0]
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Matrix Person", [email])
    LinkingService(world.ctx).search(SYSTEM, customer, integration_ids=[shop],
                                     fields={"email": email})
    exchange = max(e.id for e in world.exchanges())
    run = ConformanceService(world.ctx).run(SYSTEM, shop, email).id if with_run else 0
    ProbeService(world.ctx).configure(SYSTEM, shop, ProbeSettingsInput(True, 15, None, email))
    return Scene(world, shop, customer, email, person.external_customer_id, exchange, run)


Call = Callable[[Scene, Actor], Any]


def _debugger(s: Scene) -> DebuggerService:
    return DebuggerService(s.world.ctx)


def _log(s: Scene) -> ExchangeLogService:
    return ExchangeLogService(s.world.ctx)


MATRIX: dict[str, tuple[Call, tuple[Role, ...]]] = {
    "DebuggerService.find_profile": (
        lambda s, a: _debugger(s).find_profile(a, email=s.email), TOOLS),
    "DebuggerService.autolink": (
        lambda s, a: _debugger(s).autolink(a, s.customer, s.shop), TOOLS),
    "DebuggerService.basic": (
        lambda s, a: _debugger(s).basic(a, s.customer, s.shop, {"email": s.email},
                                        detail_external_id=s.external_id), TOOLS),
    "DebuggerService.search_fields": (
        lambda s, a: _debugger(s).search_fields(a, s.shop, s.customer), TOOLS),
    "DebuggerService.autolink_fields": (
        lambda s, a: _debugger(s).autolink_fields(a, s.shop), TOOLS),
    "ExchangeLogService.page": (lambda s, a: _log(s).page(a), TOOLS),
    "ExchangeLogService.get": (lambda s, a: _log(s).get(a, s.exchange), TOOLS),
    "ExchangeLogService.curl": (lambda s, a: _log(s).curl(a, s.exchange), TOOLS),
    "ExchangeLogService.export_jsonl": (lambda s, a: list(_log(s).export_jsonl(a)), TOOLS),
    "ReplayService.replay": (
        lambda s, a: ReplayService(s.world.ctx).replay(a, s.exchange), TOOLS),
    "ConformanceService.run": (
        lambda s, a: ConformanceService(s.world.ctx).run(a, s.shop, s.email), TOOLS),
    "ConformanceService.runs": (
        lambda s, a: ConformanceService(s.world.ctx).runs(a, s.shop), TOOLS),
    "ConformanceService.get": (
        lambda s, a: ConformanceService(s.world.ctx).get(a, s.run), TOOLS),
    "ProbeService.settings": (
        lambda s, a: ProbeService(s.world.ctx).settings(a, s.shop), (A, D, L)),
    "ProbeService.configure": (
        lambda s, a: ProbeService(s.world.ctx).configure(
            a, s.shop, ProbeSettingsInput(True, 30, 500.0, s.email)), (A,)),
    "ProbeService.statuses": (lambda s, a: ProbeService(s.world.ctx).statuses(a), tuple(Role)),
    "ProbeService.due": (lambda s, a: ProbeService(s.world.ctx).due(a), TOOLS),
    "ProbeService.run_probe": (
        lambda s, a: ProbeService(s.world.ctx).run_probe(a, s.shop), TOOLS),
    "ProbeService.run_due": (lambda s, a: ProbeService(s.world.ctx).run_due(a), TOOLS),
    "CoverageService.summary": (
        lambda s, a: CoverageService(s.world.ctx).summary(a), LEAD_VIEWS),
    "CoverageService.trend": (lambda s, a: CoverageService(s.world.ctx).trend(a), LEAD_VIEWS),
    "CoverageService.reason_counts": (
        lambda s, a: CoverageService(s.world.ctx).reason_counts(a, s.shop), LEAD_VIEWS),
    "CoverageService.worklist": (
        lambda s, a: CoverageService(s.world.ctx).worklist(a, s.shop), LEAD_VIEWS),
    "CoverageService.export_csv": (
        lambda s, a: CoverageService(s.world.ctx).export_csv(a, s.shop), LEAD_VIEWS),
    "AuditLogService.page": (lambda s, a: AuditLogService(s.world.ctx).page(a), LEAD_VIEWS),
    "AuditLogService.choices": (
        lambda s, a: AuditLogService(s.world.ctx).choices(a), LEAD_VIEWS),
    "AuditLogService.export_csv": (
        lambda s, a: AuditLogService(s.world.ctx).export_csv(a), LEAD_VIEWS),
}

SERVICES = (DebuggerService, ExchangeLogService, ReplayService, ConformanceService,
            ProbeService, CoverageService, AuditLogService)


def test_the_matrix_covers_every_public_method() -> None:
    public = {f"{cls.__name__}.{name}" for cls in SERVICES
              for name, _ in inspect.getmembers(cls, inspect.isfunction)
              if not name.startswith("_")}
    assert public == set(MATRIX)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_role_matrix(world: World, name: str, role: Role) -> None:
    scene = _scene(world, with_run=name == "ConformanceService.get")
    call, allowed = MATRIX[name]
    actor = Actor(f"{role.value}-user", role)
    calls_before = world.calls("Shop")
    if role in allowed:
        assert call(scene, actor) is not None
        return
    with pytest.raises(PermissionDenied) as refused:
        call(scene, actor)
    assert role.value in str(refused.value)
    assert world.calls("Shop") == calls_before  # refused before anything was sent
