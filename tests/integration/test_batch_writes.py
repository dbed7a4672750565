"""The backfill's set-wise writes (``record_attempts``, ``apply_refreshes``) store exactly what
the one-at-a-time ones (``record_attempt``, ``apply_refresh``) store.

The same scenario is played in two fresh databases of the same kind (two SQLite files, or two
PostgreSQL schemas): once with the batch functions, each step for all attempts in one session,
and once one attempt after the other. It holds a new link whose DETAILED answer fills a blank
name and adds contacts, an answer carrying an email and a MOBILE number another profile holds,
two answers of one batch adding the same new email (the second must see the first's), an
invalid email, a record already linked to another profile and one two profiles of the batch
match (the batch's link insert collides and falls back to one savepoint each).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.lookup import Trigger
from linker.services.autolinking import (
    AutolinkResult,
    AutolinkTrigger,
    plan_attempts,
    record_attempt,
    record_attempts,
    send_attempts,
    snapshot_integration,
)
from linker.services.context import ServiceContext
from linker.services.refresh import apply_refresh, plan_refresh
from linker.services.refresh_batch import apply_refreshes
from linker.services.refresh_outcome import RefreshOutcome
from linker.store import integrations as integrations_store
from linker.store.database import Database
from linker.store.models import (
    AuditEvent,
    AutolinkOutcome,
    Customer,
    CustomerEmail,
    CustomerPhone,
    ExchangeRecord,
    Link,
    PulledData,
)
from linker.store.secretbox import SecretBox, generate_key
from tests.integration.conftest import POSTGRES_URL_ENV, postgres_schema
from tests.integration.world import World, dataset, link_manually, new_world, record

ORDER = {"type": "ORDER", "orderNumber": "#1001", "orderStatus": "SHIPPED"}


@pytest.fixture
def twin(db_url: str, tmp_path: Path) -> Iterator[World]:
    """A second world on a fresh database of the same kind as ``world``'s."""
    if db_url.startswith("sqlite"):
        with _world(f"sqlite:///{tmp_path / 'twin.db'}", tmp_path) as other:
            yield other
        return
    with postgres_schema(os.environ[POSTGRES_URL_ENV]) as url, _world(url, tmp_path) as other:
        yield other


@contextmanager
def _world(url: str, home: Path) -> Iterator[World]:
    """A world on the fresh database at ``url``."""
    db = Database(url)
    db.upgrade()
    settings = Settings(home=home, database_url=url, secret_key=generate_key())
    try:
        yield new_world(ServiceContext(settings=settings, db=db,
                                       secrets=SecretBox.from_settings(settings)))
    finally:
        db.dispose()


def _scenario(world: World) -> None:
    """The integration, its records and the profiles (same ids in every world)."""
    records = [
        record("R-1", name="Ada Lovelace", address="1 Main Street",
               emails=["ada@example.com", "ada@work.example.com", "not-an-email"],
               phones=[("+14155550111", "MOBILE")], custom={"tier": "gold"},
               transactions=[ORDER]),
        record("R-2", name="Bob", emails=["bob@example.com", "carol@example.com"],
               phones=[("+14155550122", "MOBILE"), ("+14155550133", "HOME")]),
        record("R-4", name="Dan", emails=["dan@example.com", "shared@example.com"]),
        record("R-5", name="Eve", emails=["eve@example.com", "shared@example.com"],
               phones=[("+14155550144", "MOBILE")]),
        record("R-6", name="Fay", emails=["fay@example.com"]),
    ]
    shop = world.add_integration("Shop", dataset(*records), autolink_fields=["email"])
    world.add_customer("", ["ada@example.com"])
    world.add_customer("Bob", ["bob@example.com"], [("+14155550199", "HOME")])
    world.add_customer("Carol", ["carol@example.com"], [("+14155550122", "MOBILE")])
    world.add_customer("Dan", ["dan@example.com"])
    world.add_customer("Eve", ["eve@example.com"])
    world.add_customer("Fay", ["fay@example.com"])
    holder = world.add_customer("Fay's twin")
    link_manually(world, holder, shop, "R-6")


Recorder = Callable[[ServiceContext, list[Any]], list[AutolinkResult]]
Applier = Callable[[ServiceContext, list[Any]], list[RefreshOutcome]]


def _play(world: World, record_step: Recorder, apply_step: Applier
          ) -> tuple[list[AutolinkResult], list[RefreshOutcome]]:
    """Plan, send and record every attempt, then refresh every new link."""
    ctx = world.ctx
    with ctx.db.session(readonly=True) as session:
        integrations = [snapshot_integration(ctx, i)
                        for i in integrations_store.with_autolink_on(session)]
        ids = list(session.scalars(select(Customer.id).order_by(Customer.id)))
        attempts = plan_attempts(session, ids, integrations)
    exchanges = send_attempts(ctx, attempts, trigger=Trigger.BACKFILL)
    results = record_step(ctx, list(zip(attempts, exchanges, strict=True)))
    with ctx.db.session(readonly=True) as session:
        plans = []
        for result in results:
            if result.link_id is not None:
                link = session.get(Link, result.link_id)
                assert link is not None
                plan = plan_refresh(ctx, link)
                assert plan is not None and plan.target is not None
                plans.append(plan)
    detailed = [ctx.client.lookup_sync(p.target, p.request, trigger=Trigger.DETAILED)
                for p in plans if p.target is not None]
    return results, apply_step(ctx, list(zip(plans, detailed, strict=True)))


def _batched_record(ctx: ServiceContext, items: list[Any]) -> list[AutolinkResult]:
    with ctx.db.session() as session:
        return record_attempts(session, SYSTEM, items, trigger=AutolinkTrigger.BACKFILL,
                               now=ctx.now())


def _single_record(ctx: ServiceContext, items: list[Any]) -> list[AutolinkResult]:
    with ctx.db.session() as session:
        return [record_attempt(session, SYSTEM, attempt, exchange,
                               trigger=AutolinkTrigger.BACKFILL, now=ctx.now())
                for attempt, exchange in items]


def _batched_apply(ctx: ServiceContext, items: list[Any]) -> list[RefreshOutcome]:
    with ctx.db.session() as session:
        return apply_refreshes(ctx, session, SYSTEM, items)


def _single_apply(ctx: ServiceContext, items: list[Any]) -> list[RefreshOutcome]:
    with ctx.db.session() as session:
        return [apply_refresh(ctx, session, SYSTEM, plan, exchange) for plan, exchange in items]


def _tables(world: World) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the two paths write, without ids (PostgreSQL spends sequence values on the
    batch's rolled-back savepoint) and clock readings."""
    with world.ctx.db.session(readonly=True) as s:
        return {
            "customers": [(c.id, c.name, c.address) for c in
                          s.scalars(select(Customer).order_by(Customer.id))],
            "emails": [(e.customer_id, e.original, e.normalized, e.position, e.source) for e in
                       s.scalars(select(CustomerEmail).order_by(CustomerEmail.id))],
            "phones": [(p.customer_id, p.original, p.e164, p.type, p.mobile_key, p.position,
                        p.source) for p in
                       s.scalars(select(CustomerPhone).order_by(CustomerPhone.id))],
            "links": [(x.customer_id, x.integration_id, x.external_customer_id, x.method,
                       x.created_by) for x in s.scalars(select(Link).order_by(Link.id))],
            "outcomes": [(o.customer_id, o.integration_id, o.outcome, o.reason,
                          o.external_customer_id, o.candidates, o.exchange_id is not None,
                          o.trigger, o.actor) for o in
                         s.scalars(select(AutolinkOutcome).order_by(AutolinkOutcome.id))],
            "pulled": [(p.customer_id, p.integration_id, p.name, p.address,
                        p.custom_attributes, p.transactions, p.dropped, p.last_error,
                        p.fetched_at is not None, p.exchange_id is not None) for p in
                       s.scalars(select(PulledData).order_by(PulledData.customer_id))],
            "audit": [(a.actor, a.role, a.action, a.entity_type, a.entity_id, a.before,
                       _without_time(a.after)) for a in
                      s.scalars(select(AuditEvent).order_by(AuditEvent.id))],
            "exchanges": [(x.customer_id, x.integration_id, x.kind, x.trigger, x.actor,
                           x.result_count, x.error_kind, x.response_status) for x in
                          s.scalars(select(ExchangeRecord).order_by(ExchangeRecord.id))],
        }


def _without_time(after: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if after is None else {k: v for k, v in after.items() if k != "created_at"}


def _plain(value: Any) -> Any:
    """A result with its ids replaced by whether it has them and its clock reading dropped."""
    fields = {name: getattr(value, name) is not None
              for name in ("exchange_id", "outcome_id", "link_id") if hasattr(value, name)}
    if isinstance(value, RefreshOutcome):
        fields["fetched_at"] = value.fetched_at is not None
    return replace(value, **{k: None for k in fields}), fields


def test_batched_writes_store_what_one_at_a_time_stores(world: World, twin: World) -> None:
    _scenario(world)
    _scenario(twin)
    batched = _play(world, _batched_record, _batched_apply)
    single = _play(twin, _single_record, _single_apply)

    assert [_plain(r) for r in batched[0]] == [_plain(r) for r in single[0]]
    assert [_plain(o) for o in batched[1]] == [_plain(o) for o in single[1]]
    assert _tables(world) == _tables(twin)
    # the scenario exercised what it says it does
    outcomes = [r.outcome.value for r in batched[0]]
    assert outcomes == ["linked", "linked", "conflict", "linked", "linked", "conflict"]
    assert "already linked to Bob (id c2)" in batched[0][2].reason  # taken in the same batch
    assert "already linked to Fay's twin (id c7)" in batched[0][5].reason
    dropped = {(d.value, d.reason) for o in batched[1] for d in o.dropped}
    assert ("carol@example.com", "this email already belongs to Carol (id c3); it was not "
            "added to this profile") in dropped
    assert ("+14155550122", "this mobile number already belongs to Carol (id c3); it was not "
            "added to this profile") in dropped
    assert ("shared@example.com", "this email already belongs to Dan (id c4); it was not "
            "added to this profile") in dropped
    assert ("not-an-email", "not a valid email address; it was not added") in dropped
    ada = batched[1][0]
    assert (ada.changed, ada.emails_added, ada.phones_added) == (
        ("name", "address"), ("ada@work.example.com",), ("+14155550111",))
