"""Role matrix for the read-side services: reports, exchange log, outcomes, why, backfill.

"Allowed" means the call gets past the permission check: on the empty database it may still
find nothing to act on (NotFound or InvalidInput), but never
PermissionDenied; "refused" means PermissionDenied before anything is read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from linker.core.permissions import Actor, Role
from linker.services.autolinking import AutolinkService
from linker.services.backfill import BackfillService
from linker.services.backfill_jobs import BackfillJobs
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, NotFound, PermissionDenied
from linker.services.exchanges import ExchangeService
from linker.services.linking import LinkingService
from linker.services.reports import ReportService
from linker.services.why import WhyService

A, D, G, L = Role.ADMIN, Role.DEVELOPER, Role.AGENT, Role.SUPPORT_LEAD

Call = Callable[[ServiceContext, Actor], Any]
MATRIX: dict[str, tuple[Call, set[Role]]] = {
    "reports.coverage": (lambda c, a: ReportService(c).coverage(a), {A, D, L}),
    "reports.links_per_day": (lambda c, a: ReportService(c).links_per_day(a), {A, D, L}),
    "reports.audit_log": (lambda c, a: ReportService(c).audit_log(a), {A, L}),
    "exchanges.list": (lambda c, a: ExchangeService(c).list(a), {A, D, L}),
    "exchanges.count": (lambda c, a: ExchangeService(c).count(a), {A, D, L}),
    "exchanges.get": (lambda c, a: ExchangeService(c).get(a, 1), {A, D, L}),
    "exchanges.export": (lambda c, a: list(ExchangeService(c).export_jsonl(a)), {A, D, L}),
    "autolink.recent_outcomes": (lambda c, a: AutolinkService(c).recent_outcomes(a),
                                 {A, D, L}),
    "autolink.outcome_counts": (lambda c, a: AutolinkService(c).outcome_counts(a), {A, D, L}),
    "why.explain": (lambda c, a: WhyService(c).explain(a, "nobody", 1), {A, D, G, L}),
    "linking.systems": (lambda c, a: LinkingService(c).systems(a), {A, D, G, L}),
    "backfill.run": (lambda c, a: BackfillService(c).run(a, dry_run=True), {A}),
    "backfill.eligible": (lambda c, a: BackfillService(c).eligible(a), {A}),
    "backfill_jobs.running": (lambda c, a: BackfillJobs(c).running(a), {A}),
    "backfill_jobs.latest_run": (lambda c, a: BackfillJobs(c).latest_run(a), {A}),
    "backfill_jobs.cancel": (lambda c, a: BackfillJobs(c).cancel(a, "nope"), {A}),
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_role_matrix(ctx: ServiceContext, name: str, role: Role) -> None:
    call, allowed = MATRIX[name]
    actor = Actor(f"{role.value}-user", role)
    if role in allowed:
        with contextlib.suppress(NotFound, InvalidInput):
            call(ctx, actor)
    else:
        with pytest.raises(PermissionDenied) as refused:
            call(ctx, actor)
        assert role.value in str(refused.value)
