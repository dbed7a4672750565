"""A process killed with SIGKILL in the middle of a manual link, as the dashboard would be.

A child process runs exactly what the workbench's Link button runs (``Services.linking.link``)
against a real adaptor over loopback that never answers the DETAILED lookup, so the child
commits the link (with its audit event) and then waits on the adaptor. The test polls the
database until the link is there and SIGKILLs the child. "Restarted", the database must be
consistent (one link for the pair, one ``link.created`` event, nothing else half-written) and
the next open of the profile, or the next backfill, pulls the missing data, without a second
link or a second audit event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Select, func, select

from linker.adaptor import BackgroundServer, create_app, parse_fault
from linker.core.permissions import SYSTEM, Actor, Role
from linker.services.backfill import BackfillService
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService
from linker.services.integrations import (
    AttributeSpec,
    IntegrationChanges,
    IntegrationService,
    IntegrationSpec,
)
from linker.services.profile import ProfileService
from linker.store.models import AuditEvent, AutolinkOutcome, ExchangeRecord, Link, PulledData
from tests.integration.world import unique_record

ROOT = Path(__file__).resolve().parents[2]
AGENT = Actor("agent-7", Role.AGENT)
DEADLINE_S = 120.0
CHILD = """
import sys
from linker.config import Settings
from linker.services.facade import Services
from linker.core.permissions import Actor, Role

services = Services.from_settings(Settings.from_env())
services.linking.link(Actor("agent-7", Role.AGENT), sys.argv[1], int(sys.argv[2]), sys.argv[3])
print("the link finished: the adaptor was meant to hang", flush=True)
"""


@pytest.fixture
def adaptors() -> Iterator[tuple[str, str]]:
    """(hanging, healthy) shop adaptors over loopback."""
    with BackgroundServer(create_app("shop", faults=[parse_fault("hang")])) as hanging, \
            BackgroundServer(create_app("shop")) as healthy:
        yield hanging.url, healthy.url


def _count(ctx: ServiceContext, query: Select[tuple[int]]) -> int:
    with ctx.db.session(readonly=True) as s:
        return int(s.scalar(query) or 0)


def _pulled(ctx: ServiceContext, customer_id: str, integration_id: int) -> PulledData | None:
    with ctx.db.session(readonly=True) as s:
        pulled = s.get(PulledData, (customer_id, integration_id))
        if pulled is not None:
            s.expunge(pulled)
        return pulled


def _kill_mid_link(ctx: ServiceContext, tmp_path: Path, customer_id: str, integration_id: int,
                   external_id: str) -> None:
    env = {**os.environ, "LINKER_DATABASE_URL": ctx.settings.database_url,
           "LINKER_SECRET_KEY": str(ctx.settings.secret_key), "LINKER_HOME": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    links = select(func.count()).select_from(Link).where(Link.customer_id == customer_id)
    with (tmp_path / "child.log").open("w") as log:
        child = subprocess.Popen([sys.executable, "-c", CHILD, customer_id,
                                  str(integration_id), external_id],
                                 cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while _count(ctx, links) == 0:
                assert child.poll() is None, (tmp_path / "child.log").read_text()
                assert time.monotonic() < deadline, "the child never linked"
                time.sleep(0.02)  # polling the database with a deadline
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=60) == -signal.SIGKILL
        finally:
            if child.poll() is None:
                child.kill()


@pytest.mark.parametrize("heal_by", ["open", "backfill"])
def test_a_link_killed_mid_way_is_consistent_and_finished_after_restart(
        ctx: ServiceContext, tmp_path: Path, adaptors: tuple[str, str], heal_by: str) -> None:
    hanging, healthy = adaptors
    person = unique_record()
    integrations = IntegrationService(ctx)
    shop = integrations.create(SYSTEM, IntegrationSpec(
        name="Shop", url=hanging + "lookup", timeout_s=15.0, autolink_enabled=True,
        autolink_fields=("email",), search_query_attributes=(AttributeSpec("email", "Email"),),
        search_results_attributes=(AttributeSpec("name", "Name"),)))
    customer = CustomerService(ctx).import_csv(  # no auto-linking on import
        SYSTEM, f"name,email,phone\nCrash Test,{person.emails[0]},\n").created[0]

    _kill_mid_link(ctx, tmp_path, customer, shop.id, person.external_customer_id)

    pair = (Link.customer_id == customer) & (Link.integration_id == shop.id)
    created = (select(func.count()).select_from(AuditEvent)
               .where(AuditEvent.action == "link.created", AuditEvent.entity_id == customer))
    assert _count(ctx, select(func.count()).select_from(Link).where(pair)) == 1
    assert _count(ctx, created) == 1
    before = _pulled(ctx, customer, shop.id)
    assert before is None or before.fetched_at is None  # killed before the data came

    integrations.update(SYSTEM, shop.id, IntegrationChanges(url=healthy + "lookup"))  # restart
    if heal_by == "open":
        opened = ProfileService(ctx).open(AGENT, customer)
        assert [r.status for r in opened.refreshes] == ["refreshed"]
    else:
        summary = BackfillService(ctx).run(SYSTEM, concurrency=2)
        assert (summary.healed, summary.heal_failed) == (1, 0)
    after = _pulled(ctx, customer, shop.id)
    assert after is not None and after.fetched_at is not None and after.name == person.name
    assert _count(ctx, select(func.count()).select_from(Link).where(pair)) == 1
    assert _count(ctx, created) == 1
    assert _count(ctx, select(func.count()).select_from(Link)) == 1
    # A later backfill finds nothing to do for the pair: no outcome says it linked again.
    BackfillService(ctx).run(SYSTEM, concurrency=2)
    assert _count(ctx, select(func.count()).select_from(AutolinkOutcome)
                  .where(AutolinkOutcome.outcome == "linked")) == 0
    assert _count(ctx, select(func.count()).select_from(Link)) == 1
    assert _count(ctx, select(func.count()).select_from(ExchangeRecord)
                  .where(ExchangeRecord.customer_id == customer)) >= 1
