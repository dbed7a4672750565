"""Role matrix for the services behind the Health, Coverage and Audit log pages.

"Allowed" means the call gets past the permission check (on the empty database it may find
nothing: NotFound); "refused" means PermissionDenied before anything is read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from linker.core.permissions import Actor, PermissionDenied, Role
from linker.services.audit_log import AuditLogService
from linker.services.context import ServiceContext
from linker.services.coverage import CoverageService
from linker.services.errors import NotFound
from linker.services.health import HealthService

A, D, G, L = Role.ADMIN, Role.DEVELOPER, Role.AGENT, Role.SUPPORT_LEAD

Call = Callable[[ServiceContext, Actor], Any]
MATRIX: dict[str, tuple[Call, set[Role]]] = {
    "health.overview": (lambda c, a: HealthService(c).overview(a), {A, D, G, L}),
    "coverage.summary": (lambda c, a: CoverageService(c).summary(a), {A, L}),
    "coverage.trend": (lambda c, a: CoverageService(c).trend(a), {A, L}),
    "coverage.reason_counts": (lambda c, a: CoverageService(c).reason_counts(a, 1), {A, L}),
    "coverage.worklist": (lambda c, a: CoverageService(c).worklist(a, 1), {A, L}),
    "coverage.export_csv": (lambda c, a: CoverageService(c).export_csv(a, 1), {A, L}),
    "audit_log.page": (lambda c, a: AuditLogService(c).page(a), {A, L}),
    "audit_log.choices": (lambda c, a: AuditLogService(c).choices(a), {A, L}),
    "audit_log.export_csv": (lambda c, a: AuditLogService(c).export_csv(a), {A, L}),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_role_matrix(ctx: ServiceContext, name: str, role: Role) -> None:
    call, allowed = MATRIX[name]
    actor = Actor(f"{role.value}-user", role)
    if role in allowed:
        with contextlib.suppress(NotFound):
            call(ctx, actor)
    else:
        with pytest.raises(PermissionDenied) as refused:
            call(ctx, actor)
        assert role.value in str(refused.value)
