"""Backfills split into chunk jobs: real `linker worker` processes on PostgreSQL (Procrastinate's
real worker, not its in-memory connector), and the in-process fallback on SQLite.

The Shop adaptor is served over a real loopback socket (BackgroundServer) in the test process;
the workers are subprocesses reaching it and the test's PostgreSQL schema through the same
URL. Every wait polls the database with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from procrastinate import App
from sqlalchemy import func, inspect, select, text, update

from linker.adaptor import BackgroundServer, create_app
from linker.cli import autolink_cmd
from linker.cli.main import main
from linker.core.permissions import Actor, Role
from linker.lookup import LookupClient
from linker.services.backfill import run_key
from linker.services.backfill_jobs import CHUNK_TASK, BackfillJobs, Chunk, RunStatus
from linker.services.errors import Conflict, InvalidInput, PermissionDenied
from linker.services.leases import BackfillBusy, acquire, release, shard_spec
from linker.store import jobqueue
from linker.store.database import Database, alembic_config
from linker.store.models import AutolinkOutcome, ExchangeRecord, Integration, Link, PulledData
from linker.store.models import BackfillProgress as ProgressRow
from tests.integration.test_backfill import (
    ADMIN,
    LINKABLE,
    Population,
    cli_env,
    count,
    expected_counts,
    populate,
)
from tests.integration.workers import Workers, wait_for
from tests.integration.world import SIGNING_KEY, World

EXTRA = 40
"""Profiles that match nobody, added so a run has several chunks."""


@pytest.fixture
def served(world: World) -> Iterator[tuple[World, Population]]:
    """The backfill population plus EXTRA no-match profiles, Shop served over loopback."""
    pop = populate(world)
    pop.nobody.extend(world.add_customer(f"Extra {i}", [f"extra{i}@nowhere.example"])
                      for i in range(EXTRA))
    world.ctx.client = LookupClient()
    with BackgroundServer(create_app("shop", signing_key=SIGNING_KEY,
                                     faults=[_latency(15)])) as server:
        with world.ctx.db.session() as s:
            integration = s.get(Integration, pop.shop)
            assert integration is not None
            integration.url = server.url
        yield world, pop


def _latency(ms: int) -> object:
    from linker.adaptor.faults import parse_fault

    return parse_fault(f"latency:{ms}")


@pytest.fixture
def pg(served: tuple[World, Population]) -> tuple[World, Population]:
    """The served population, PostgreSQL only (workers need the job queue)."""
    world, _ = served
    if world.ctx.db.is_sqlite:
        pytest.skip("workers need PostgreSQL; the SQLite fallback is tested separately")
    return served


@pytest.fixture
def workers(pg: tuple[World, Population], tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(pg[0].ctx, tmp_path)
    try:
        yield pool
    finally:
        pool.stop()


def finished(world: World, run: str) -> Callable[[], bool]:
    return lambda: not BackfillJobs(world.ctx).status(ADMIN, run).active


def job_workers(world: World, run: str) -> set[int]:
    """The worker ids that took the run's chunk jobs (while those workers are alive)."""
    with world.ctx.db.session(readonly=True) as s:
        return set(s.scalars(text(
            "SELECT DISTINCT worker_id FROM procrastinate_jobs WHERE task_name = :t "
            "AND args->>'run' = :r AND worker_id IS NOT NULL"), {"t": CHUNK_TASK, "r": run}))


def assert_backfill_invariants(world: World, pop: Population, *, exact: bool = True) -> None:
    """One link per profile and integration, each with its DETAILED data; the linked profiles'
    outcome recorded once; every candidate has an outcome (exactly one when ``exact``)."""
    with world.ctx.db.session(readonly=True) as s:
        per_pair = s.execute(select(Link.customer_id, func.count()).where(
            Link.integration_id == pop.shop).group_by(Link.customer_id)).all()
        assert per_pair and all(n == 1 for _, n in per_pair)
        assert len(per_pair) == LINKABLE + 1
        without_data = s.scalar(select(func.count()).select_from(Link).outerjoin(
            PulledData, (PulledData.customer_id == Link.customer_id)
            & (PulledData.integration_id == Link.integration_id)).where(
            Link.method == "auto", PulledData.fetched_at.is_(None)))
        assert without_data == 0
        linked = dict(s.execute(select(AutolinkOutcome.customer_id, func.count()).where(
            AutolinkOutcome.outcome == "linked").group_by(AutolinkOutcome.customer_id)).all())
        assert sorted(linked) == sorted(pop.linkable) and set(linked.values()) == {1}
        outcomes = dict(s.execute(select(AutolinkOutcome.customer_id, func.count())
                                  .group_by(AutolinkOutcome.customer_id)).all())
        assert sorted(outcomes) == sorted(pop.candidates)
        if exact:
            assert set(outcomes.values()) == {1}


# ------------------------------------------------------------------------ real workers (PG)


def test_a_worker_process_completes_a_backfill_of_chunk_jobs(
        pg: tuple[World, Population], workers: Workers) -> None:
    world, pop = pg
    workers.start()
    status = BackfillJobs(world.ctx).start(ADMIN, chunk_size=10, concurrency=4)
    assert status.total == len(pop.candidates)
    chunks = -(-len(pop.candidates) // 10)
    assert sum(status.chunks.values()) == chunks  # todo, or already taken by the worker
    wait_for(finished(world, status.run), "the chunks to finish")

    final = BackfillJobs(world.ctx).status(ADMIN, status.run)
    assert final.chunks == {"succeeded": chunks}
    assert final.done == final.total == len(pop.candidates)
    assert final.counts == {**expected_counts(), "no_match": 3 + EXTRA}
    assert_backfill_invariants(world, pop)
    assert count(world, ProgressRow) == 0  # complete: the progress was cleared
    assert [e.action for e in world.audit("backfill.run")] == ["backfill.run"]
    assert len(world.audit("backfill.queue")) == 1


def test_two_workers_share_a_backfill(pg: tuple[World, Population], workers: Workers) -> None:
    world, pop = pg
    workers.start()
    workers.start()
    status = BackfillJobs(world.ctx).start(ADMIN, chunk_size=4, concurrency=2)
    wait_for(finished(world, status.run), "the chunks to finish")
    assert len(job_workers(world, status.run)) == 2  # both took chunks
    final = BackfillJobs(world.ctx).status(ADMIN, status.run)
    assert final.chunks == {"succeeded": sum(status.chunks.values())}
    assert_backfill_invariants(world, pop)


def test_a_worker_killed_mid_chunk_is_retried_and_nothing_is_duplicated(
        pg: tuple[World, Population], workers: Workers) -> None:
    world, pop = pg
    first = workers.start()
    # One chunk over everything, one request at a time: the kill lands inside it.
    status = BackfillJobs(world.ctx).start(ADMIN, chunk_size=1000, concurrency=1)
    assert sum(status.chunks.values()) == 1
    wait_for(lambda: count(world, AutolinkOutcome) >= 5, "the chunk to be under way")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert BackfillJobs(world.ctx).status(ADMIN, status.run).chunks == {"doing": 1}

    workers.start()  # its stalled-job task sees the dead worker's job and retries it
    wait_for(finished(world, status.run), "the retried chunk to finish")
    with world.ctx.db.session(readonly=True) as s:
        (job,) = jobqueue.jobs_of_run(s, CHUNK_TASK, status.run)
    assert job.status == "succeeded" and job.attempts >= 2
    # The attempts in flight at the kill may be recorded twice; links and linked outcomes never.
    assert_backfill_invariants(world, pop, exact=False)
    assert count(world, ProgressRow) == 0


def test_cancel_stops_the_run_and_a_new_run_resumes(
        pg: tuple[World, Population], workers: Workers, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world, pop = pg
    jobs = BackfillJobs(world.ctx)
    status = jobs.start(ADMIN, chunk_size=5, concurrency=1)
    assert jobs.cancel(ADMIN, status.run) == sum(status.chunks.values())
    cancelled = jobs.status(ADMIN, status.run)
    assert not cancelled.active and cancelled.cancelled and cancelled.done == 0
    assert count(world, AutolinkOutcome) == 0

    workers.start()
    cli_env(monkeypatch, world, tmp_path)
    assert main(["autolink", "backfill", "--via-workers", "--chunk-size", "7"]) == 0
    out, _ = capsys.readouterr()
    assert re.search(rf"^linked\s+{LINKABLE}$", out, re.MULTILINE), out
    assert f"{len(pop.candidates)} of {len(pop.candidates)} profiles" in out
    assert_backfill_invariants(world, pop)

    assert main(["autolink", "status"]) == 0
    out, _ = capsys.readouterr()
    assert "chunk jobs: succeeded" in out


def test_cli_detach_then_ctrl_c_while_following_cancels_the_run(
        pg: tuple[World, Population], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    world, pop = pg
    cli_env(monkeypatch, world, tmp_path)
    assert main(["autolink", "backfill", "--via-workers", "--detach", "--chunk-size", "20"]) == 0
    out, err = capsys.readouterr()
    run = re.search(r"queued backfill run (\w+): 3 chunk job\(s\)", out)
    assert run, out
    assert "no worker is running" in err
    assert main(["autolink", "status", run[1]]) == 0
    out, _ = capsys.readouterr()
    assert "still running" in out and "chunk jobs: todo 3" in out
    assert main(["autolink", "cancel", run[1]]) == 0
    assert "3 chunk job(s) or process(es) were told to stop" in capsys.readouterr().out

    # Following a run (no worker: it stays queued), the first Ctrl-C cancels it.
    draw = autolink_cmd.ProgressBar.__call__
    pressed: list[bool] = []

    def draw_then_press_ctrl_c(self: autolink_cmd.ProgressBar, p: object) -> None:
        draw(self, p)  # type: ignore[arg-type]
        if not pressed:  # once: a second Ctrl-C would abort at once
            pressed.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(autolink_cmd.ProgressBar, "__call__", draw_then_press_ctrl_c)
    assert main(["autolink", "backfill", "--via-workers"]) == 0
    out, err = capsys.readouterr()
    assert "stopping after the batches in flight" in err
    assert "chunk jobs: cancelled 1" in out and "stopped early" in out
    assert count(world, AutolinkOutcome) == 0
    assert main(["autolink", "status", "nope"]) == 1
    assert "no backfill run 'nope'" in capsys.readouterr().err
    assert len(pop.candidates) > 40


def test_a_second_run_is_refused_while_chunks_are_queued(pg: tuple[World, Population]) -> None:
    world, _ = pg
    jobs = BackfillJobs(world.ctx)
    first = jobs.start(ADMIN, chunk_size=10)
    with pytest.raises(Conflict, match=f"already queued as jobs \\(run {first.run}"):
        jobs.start(ADMIN)
    jobs.cancel(ADMIN, first.run)
    # An in-process run holding the lease refuses a queued run too, naming its holder.
    lease = acquire(world.ctx.db, [(first_integration(world), "Shop")], "someone on elsewhere "
                    "(pid 1)", world.ctx.now())
    try:
        with pytest.raises(BackfillBusy, match="someone on elsewhere"):
            jobs.start(ADMIN)
    finally:
        release(world.ctx.db, lease)


def first_integration(world: World) -> int:
    with world.ctx.db.session(readonly=True) as s:
        return int(s.scalar(select(Integration.id).order_by(Integration.id)) or 0)


def test_chunk_leases_of_one_run_coexist_and_refuse_other_runs(world: World) -> None:
    integration = [(world.add_integration("Shop", "shop", autolink_fields=["email"]), "Shop")]
    now = world.ctx.now()
    one = acquire(world.ctx.db, integration, "a", now, chunk=(0, 3))
    two = acquire(world.ctx.db, integration, "b", now, chunk=(1, 3))
    with pytest.raises(BackfillBusy):
        acquire(world.ctx.db, integration, "c", now, chunk=(1, 3))
    with pytest.raises(BackfillBusy):
        acquire(world.ctx.db, integration, "c", now)  # a whole in-process run
    with pytest.raises(BackfillBusy):
        acquire(world.ctx.db, integration, "c", now, shard=(2, 3))  # a shard is another split
    release(world.ctx.db, one)
    release(world.ctx.db, two)
    assert shard_spec(None, chunk=(4, 9)) == "chunk 4/9" and shard_spec((1, 2)) == "1/2"


def test_jobs_need_the_permission_and_valid_arguments(pg: tuple[World, Population]) -> None:
    world, _ = pg
    jobs = BackfillJobs(world.ctx)
    with pytest.raises(PermissionDenied):
        jobs.start(Actor("ann", Role.AGENT))
    with pytest.raises(InvalidInput, match="chunk_size"):
        jobs.start(ADMIN, chunk_size=0)
    assert jobs.latest_run(ADMIN) is None
    assert not jobs.workers_present()


# ------------------------------------------------------------------------ SQLite: in-process


def test_sqlite_runs_the_same_chunk_jobs_in_process(
        served: tuple[World, Population], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    world, pop = served
    if not world.ctx.db.is_sqlite:
        pytest.skip("the in-process fallback is SQLite's")
    jobs = BackfillJobs(world.ctx)
    with pytest.raises(InvalidInput, match="SQLite has no job queue"):
        jobs.start(ADMIN)
    seen: list[int] = []
    status = jobs.run_inline(ADMIN, chunk_size=8, progress=lambda p: seen.append(p.done))
    chunks = -(-len(pop.candidates) // 8)
    assert status.chunks == {"succeeded": chunks}
    assert status.done == status.total == len(pop.candidates)
    assert seen == sorted(seen) and seen[-1] == len(pop.candidates)
    assert_backfill_invariants(world, pop)
    assert count(world, ProgressRow) == 0

    cli_env(monkeypatch, world, tmp_path)
    # A completed run cleared its progress: a new one retries the profiles still unlinked
    # (as an in-process run does) and links nothing twice.
    assert main(["autolink", "backfill", "--via-workers"]) == 0
    out, err = capsys.readouterr()
    assert "the chunk jobs run in this process" in err
    again = len(pop.candidates) - LINKABLE
    assert f"{again} of {again} profiles; chunk jobs: succeeded 1" in out
    assert re.search(r"^linked\s+0$", out, re.MULTILINE), out
    assert count(world, Link) == LINKABLE + 1
    assert main(["worker"]) == 1
    _, err = capsys.readouterr()
    assert "SQLite, which has no job queue" in err


def test_a_chunk_resumes_from_its_progress(served: tuple[World, Population]) -> None:
    world, pop = served
    jobs = BackfillJobs(world.ctx)
    (chunk,) = jobs.plan(ADMIN, chunk_size=1000)
    assert isinstance(chunk, Chunk) and Chunk.from_args(chunk.as_args()) == chunk
    done = sorted(pop.candidates)[:5]
    with world.ctx.db.session() as s:
        s.add_all(ProgressRow(run_key=run_key([pop.shop]), customer_id=c) for c in done)
    summary = jobs.run_chunk_job(chunk)
    assert summary.total == summary.done == len(pop.candidates) - 5
    assert count(world, AutolinkOutcome) == len(pop.candidates) - 5


def test_cli_refuses_bad_combinations(served: tuple[World, Population],
                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    world, _ = served
    cli_env(monkeypatch, world, tmp_path)
    assert main(["autolink", "backfill", "--via-workers", "--dry-run"]) == 2
    assert main(["autolink", "backfill", "--detach"]) == 2
    assert main(["autolink", "backfill", "--chunk-size", "5"]) == 2
    assert main(["worker", "--queues", "nope"]) == 1
    _, err = capsys.readouterr()
    assert "cannot be combined" in err and "--detach goes with --via-workers" in err
    assert "--chunk-size goes with --via-workers or --shard" in err
    assert "unknown queue(s) nope" in err
    assert count(world, AutolinkOutcome) == 0


def test_run_status_reports_progress() -> None:
    status = RunStatus("r", ("Shop",), None, {"doing": 1, "succeeded": 2}, 30, 12,
                       {"linked": 3})
    assert status.active and not status.cancelled
    progress = status.progress()
    assert (progress.done, progress.total, progress.counts) == (12, 30, {"linked": 3})
    assert not RunStatus("r", (), None, {"aborted": 1}, 1, 0).active


def test_queue_reads_need_postgres() -> None:
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        jobqueue.conninfo("sqlite:///x.db")
    assert jobqueue.conninfo("postgresql+psycopg://u:p%40@127.0.0.1:5/d?options=-csearch_path"
                             "%3Dt1") == "postgresql://u:p%40@127.0.0.1:5/d?options=-csearch_path%3Dt1"


# ------------------------------------------------------------------ retention and migration


def test_the_prune_job_run_by_a_worker_applies_the_retention(
        pg: tuple[World, Population], workers: Workers) -> None:
    world, _ = pg
    BackfillJobs(world.ctx).run_chunk_job(BackfillJobs(world.ctx).plan(ADMIN)[0])
    kept = count(world, ExchangeRecord)
    assert kept > 2
    old = world.ctx.now() - timedelta(days=world.ctx.settings.exchange_retention_days + 1)
    with world.ctx.db.session() as s:
        ids = list(s.scalars(select(ExchangeRecord.id).order_by(ExchangeRecord.id).limit(2)))
        s.execute(update(ExchangeRecord).where(ExchangeRecord.id.in_(ids)).values(
            started_at=old))
    workers.start("--queues", "maintenance")
    # What the hourly schedule defers, deferred now.
    with App(connector=jobqueue.connector(world.ctx.db.url)).open() as app:
        app.configure_task("linker.prune", queue="maintenance").defer(timestamp=0)
    wait_for(lambda: count(world, ExchangeRecord) == kept - 2, "the prune job")
    with world.ctx.db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(ExchangeRecord).where(
            ExchangeRecord.id.in_(ids))) == 0


def test_migration_0011_is_reversible(db: Database) -> None:
    def queue_tables() -> set[str]:
        return {t for t in inspect(db.engine).get_table_names()
                if t.startswith(jobqueue.TABLE_PREFIX)}

    present = set() if db.is_sqlite else {"procrastinate_jobs", "procrastinate_workers",
                                           "procrastinate_events",
                                           "procrastinate_periodic_defers"}
    assert queue_tables() == present
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0007")
    assert queue_tables() == set()
    db.upgrade()
    assert queue_tables() == present
