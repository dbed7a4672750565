"""Scheduled conformance probes on SQLite and PostgreSQL: settings, the due schedule and its
claim, the stored report cards, the degraded verdict, and `linker probe` over a real socket.
The adaptors are the reference adaptor (in-process through the world's router, or served on
loopback for the CLI)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select, text

from linker.adaptor import BackgroundServer, create_app
from linker.cli.main import main
from linker.core.permissions import SYSTEM, Actor, Role
from linker.core.probes import ProbeSettingsInput
from linker.lookup import LookupClient
from linker.services.errors import InvalidInput, NotFound, PermissionDenied
from linker.services.jobs import PROBE_TASK, build_app
from linker.services.probes import PROBE_ACTOR, ProbeService, ProbeTicker
from linker.store import probes as probes_store
from linker.store.database import Database, alembic_config
from linker.store.models import AuditEvent, ConformanceRun, Integration
from tests.integration.test_backfill import cli_env
from tests.integration.workers import Workers, wait_for
from tests.integration.world import SIGNING_KEY, World, race, unique_record

EMAIL = unique_record().emails[0]
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Clock:
    """A settable ``ctx.now``."""

    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock(world: World) -> Clock:
    clock = Clock()
    world.ctx.now = clock
    return clock


def enable(world: World, integration_id: int, *, every: int = 15, slo: float | None = None,
           email: str = EMAIL) -> None:
    ProbeService(world.ctx).configure(SYSTEM, integration_id, ProbeSettingsInput(
        True, every, slo, email))


def test_settings_default_to_off_and_are_saved_and_audited(world: World, clock: Clock) -> None:
    shop = world.add_integration("Shop", "shop")
    probes = ProbeService(world.ctx)
    assert not probes.settings(SYSTEM, shop).enabled
    assert probes.settings(SYSTEM, shop).every_minutes == 15
    saved = probes.configure(SYSTEM, shop, ProbeSettingsInput(True, 5, 400.0, EMAIL.upper()))
    assert (saved.enabled, saved.every_minutes, saved.p95_slo_ms) == (True, 5, 400.0)
    assert saved.known_email == EMAIL.lower() and saved.updated_by == "system"
    assert probes.settings(SYSTEM, shop) == saved
    audit = world.audit("probe.configure")
    assert len(audit) == 1 and audit[0].after is not None
    assert audit[0].after["every_minutes"] == 5 and audit[0].before is not None
    assert audit[0].before["enabled"] is False


def test_bad_settings_and_unknown_integrations_are_refused(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    probes = ProbeService(world.ctx)
    with pytest.raises(InvalidInput) as refused:
        probes.configure(SYSTEM, shop, ProbeSettingsInput(True, 0, -1, ""))
    assert set(refused.value.fields) == {"every_minutes", "p95_slo_ms", "known_email"}
    with pytest.raises(NotFound):
        probes.configure(SYSTEM, shop + 99, ProbeSettingsInput(True, 15, None, EMAIL))
    with pytest.raises(NotFound):
        probes.settings(SYSTEM, shop + 99)
    assert not probes.settings(SYSTEM, shop).enabled  # nothing saved
    with world.ctx.db.session(readonly=True) as s:
        assert not list(s.scalars(select(AuditEvent)))


def test_only_admins_change_settings_and_developers_may_run_probes(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    probes = ProbeService(world.ctx)
    for role in (Role.DEVELOPER, Role.AGENT, Role.SUPPORT_LEAD):
        with pytest.raises(PermissionDenied, match="may not change probe settings"):
            probes.configure(Actor("u", role), shop, ProbeSettingsInput(True, 15, None, EMAIL))
    enable(world, shop)
    assert probes.run_due(Actor("dev", Role.DEVELOPER))
    with pytest.raises(PermissionDenied):
        probes.run_due(Actor("agent", Role.AGENT))


def test_a_due_probe_runs_once_per_interval_and_keeps_each_card(world: World,
                                                                 clock: Clock) -> None:
    shop = world.add_integration("Shop", "shop")
    world.add_integration("Quiet", "shop")  # probe never enabled: never due
    enable(world, shop, every=15)
    probes = ProbeService(world.ctx)
    assert probes.due(SYSTEM) == [shop]
    [first] = probes.run_due(SYSTEM)
    assert first.card is not None and first.card.passed and first.verdict is not None
    assert not first.verdict.degraded and first.card.actor == PROBE_ACTOR.username
    assert first.card.p95_ms is not None and first.card.p95_ms > 0
    calls = world.calls("Shop")
    clock.at = T0 + timedelta(minutes=14)
    assert probes.due(SYSTEM) == [] and probes.run_due(SYSTEM) == []
    assert world.calls("Shop") == calls  # nothing sent when nothing is due
    [status] = [s for s in probes.statuses(SYSTEM) if s.integration_id == shop]
    assert status.state == "passing" and status.card is not None
    assert status.card.id == first.card.id
    assert status.last_started_at == T0 and status.next_due_at == T0 + timedelta(minutes=15)
    clock.at = T0 + timedelta(minutes=15)
    [second] = probes.run_due(SYSTEM)
    assert second.card is not None and second.card.id != first.card.id
    with world.ctx.db.session(readonly=True) as s:
        cards = list(s.scalars(select(ConformanceRun).where(
            ConformanceRun.integration_id == shop)))
    assert len(cards) == 2 and {c.actor for c in cards} == {"system, scheduled probe"}


def test_a_failing_adaptor_degrades_its_integration_and_names_the_check(world: World,
                                                                         clock: Clock) -> None:
    shop = world.add_integration("Shop", "shop", faults=["status:503"])
    enable(world, shop)
    [result] = ProbeService(world.ctx).run_due(SYSTEM)
    assert result.verdict is not None and result.verdict.degraded
    assert "BASIC by a known email finds it" in result.verdict.reason
    [status] = ProbeService(world.ctx).statuses(SYSTEM)
    assert status.state == "degraded" and status.verdict == result.verdict


def test_p95_over_the_slo_degrades_a_passing_probe(world: World, clock: Clock) -> None:
    shop = world.add_integration("Shop", "shop", faults=["latency:30"])
    enable(world, shop, slo=5.0)
    [result] = ProbeService(world.ctx).run_due(SYSTEM)
    assert result.card is not None and result.card.passed
    assert result.verdict is not None and result.verdict.degraded
    assert "over the SLO of 5 ms" in result.verdict.reason


def test_disabled_and_inactive_integrations_are_not_probed(world: World, clock: Clock) -> None:
    shop = world.add_integration("Shop", "shop")
    off = world.add_integration("Off", "shop", active=False)
    enable(world, shop)
    enable(world, off)
    probes = ProbeService(world.ctx)
    probes.configure(SYSTEM, shop, ProbeSettingsInput(False, 15, None, EMAIL))
    assert probes.due(SYSTEM) == [] and probes.run_due(SYSTEM) == []
    statuses = {s.integration_id: s for s in probes.statuses(SYSTEM)}
    assert statuses[shop].state == "off" and statuses[shop].next_due_at is None
    assert statuses[off].next_due_at is None and not statuses[off].active


def test_settings_that_cannot_work_give_an_error_not_an_exception(world: World,
                                                                   clock: Clock) -> None:
    shop = world.add_integration("Shop", "shop")
    enable(world, shop)
    with world.ctx.db.session() as s:
        integration = s.get(Integration, shop)
        assert integration is not None
        integration.url = "ftp://shop.test/lookup"
    [result] = ProbeService(world.ctx).run_due(SYSTEM)
    assert result.card is None and result.error


def test_of_racing_runners_only_one_claims_a_probe(world: World, clock: Clock) -> None:
    shop = world.add_integration("Shop", "shop")
    enable(world, shop)

    def claim(_: int) -> bool:
        with world.ctx.db.session() as s:
            return probes_store.claim(s, shop, T0)

    outcomes = race(claim, threads=8)
    assert sorted(outcomes, key=str) == [False] * 7 + [True], outcomes


def test_a_deleted_integration_takes_its_probe_along(world: World, clock: Clock) -> None:
    shop = world.add_integration("Shop", "shop")
    enable(world, shop)
    ProbeService(world.ctx).run_due(SYSTEM)
    from linker.services.integrations import IntegrationService

    IntegrationService(world.ctx).delete(SYSTEM, shop)
    assert ProbeService(world.ctx).statuses(SYSTEM) == []
    with world.ctx.db.session(readonly=True) as s:
        assert probes_store.setting_of(s, shop) is None


@contextmanager
def shop_on_loopback(world: World) -> Iterator[int]:
    """Shop served over a real loopback socket (for other processes: the CLI, workers)."""
    shop = world.add_integration("Shop", "shop")
    world.ctx.client = LookupClient()
    with BackgroundServer(create_app("shop", signing_key=SIGNING_KEY)) as server:
        with world.ctx.db.session() as s:
            integration = s.get(Integration, shop)
            assert integration is not None
            integration.url = server.url
        yield shop


def test_cli_sets_runs_and_reports_probes(world: World, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with shop_on_loopback(world) as shop:
        cli_env(monkeypatch, world, tmp_path)
        assert main(["probe", "set", "Shop", "--enable"]) == 1
        assert "known_email" in capsys.readouterr().err
        with pytest.raises(SystemExit) as usage:
            main(["probe", "set", "Shop", "--every", "0"])
        assert usage.value.code == 2 and "from 1 to 1440" in capsys.readouterr().err
        assert main(["probe", "set", "Shop", "--enable", "--every", "5", "--slo-ms", "2000",
                     "--known-email", EMAIL]) == 0
        assert "probe on, every 5 min, p95 SLO 2000 ms" in capsys.readouterr().out
        assert main(["probe", "run-due"]) == 0
        out = capsys.readouterr().out
        assert out.startswith("Shop: ok (every required check passed; p95 ") and "card" in out
        assert main(["probe", "run-due"]) == 0
        assert capsys.readouterr().out == "no probe is due\n"
        assert main(["probe", "status"]) == 0
        out = capsys.readouterr().out
        assert "passing" in out and "5 min" in out and "2000" in out
        assert main(["probe", "set", "Shop", "--no-slo", "--disable"]) == 0
        assert "probe off" in capsys.readouterr().out
    with world.ctx.db.session(readonly=True) as s:
        setting = probes_store.setting_of(s, shop)
        assert setting is not None and setting.p95_slo_ms is None
        assert setting.known_email == EMAIL.lower() and setting.last_run_id is not None


def test_the_in_process_ticker_runs_due_probes_until_stopped(world: World) -> None:
    shop = world.add_integration("Shop", "shop")
    enable(world, shop)
    ticker = ProbeTicker(ProbeService(world.ctx), interval_s=0.05).start()
    try:
        wait_for(lambda: ProbeService(world.ctx).statuses(SYSTEM)[0].card is not None,
                 "the ticker to run the due probe")
        wait_for(lambda: ticker.ticks >= 3, "more ticks")
    finally:
        ticker.stop()
    assert not ticker.alive
    with world.ctx.db.session(readonly=True) as s:  # later ticks found nothing due
        assert len(list(s.scalars(select(ConformanceRun)))) == 1


def test_migration_0013_is_reversible(db: Database) -> None:
    def shape() -> tuple[bool, bool]:
        tables = inspect(db.engine).get_table_names()
        columns = {c["name"] for c in inspect(db.engine).get_columns("conformance_runs")}
        return "probe_settings" in tables, "p95_ms" in columns

    assert shape() == (True, True)
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0012")
    assert shape() == (False, False)
    db.upgrade()
    assert shape() == (True, True)


# ------------------------------------------------------------------- jobs on PostgreSQL


@pytest.fixture
def served_shop(world: World) -> Iterator[tuple[World, int]]:
    """Shop served over loopback (workers are other processes), its probe enabled."""
    if world.ctx.db.is_sqlite:
        pytest.skip("probe jobs need PostgreSQL; SQLite runs them in-process (tested above)")
    with shop_on_loopback(world) as shop:
        enable(world, shop)
        yield world, shop


def probe_jobs(world: World) -> list[tuple[str, str, str, int]]:
    """(status, lock, queueing lock, integration id) of every probe job."""
    with world.ctx.db.session(readonly=True) as s:
        rows = s.execute(text(
            "SELECT status::text, lock, queueing_lock, (args->>'integration_id')::int "
            "FROM procrastinate_jobs WHERE task_name = :t ORDER BY id"), {"t": PROBE_TASK})
        return [(str(a), str(b), str(c), int(d)) for a, b, c, d in rows]


def test_the_scheduler_queues_one_locked_job_per_due_probe(
        served_shop: tuple[World, int]) -> None:
    world, shop = served_shop
    app = build_app(world.ctx, stalled_after_s=30)
    schedule = app.tasks["linker.schedule_probes"].func

    async def tick() -> int:
        async with app.open_async():
            return int(await schedule(None, timestamp=0))

    assert asyncio.run(tick()) == 1
    assert asyncio.run(tick()) == 0  # still queued: the queueing lock refuses a second
    assert probe_jobs(world) == [("todo", f"probe:{shop}", f"probe:{shop}", shop)]


def test_a_worker_process_runs_a_due_probe_and_stores_its_card(
        served_shop: tuple[World, int], tmp_path: Path) -> None:
    world, shop = served_shop
    pool = Workers(world.ctx, tmp_path)

    def last_run() -> int | None:
        with world.ctx.db.session(readonly=True) as s:
            setting = probes_store.setting_of(s, shop)
            return setting.last_run_id if setting else None

    try:
        pool.start("--queues", "maintenance,probes")  # the minute's tick is deferred at start
        wait_for(lambda: last_run() is not None, "the worker to run the due probe")
        wait_for(lambda: [j[0] for j in probe_jobs(world)] == ["succeeded"],
                 "the probe job to finish")
    finally:
        pool.stop()
    [status] = ProbeService(world.ctx).statuses(SYSTEM)
    assert status.card is not None and status.card.id == last_run()
    assert status.card.actor == "system, scheduled probe" and status.state == "passing"
    assert ProbeService(world.ctx).due(SYSTEM) == []  # claimed for this interval
