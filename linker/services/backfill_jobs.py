"""A backfill split into chunk jobs that any number of workers take (issue 11).

- *Plan*: per integration, the profiles not linked to it and not done by an interrupted earlier
  run (its ``backfill_progress`` key), in id order, cut into chunks of ``chunk_size``. A chunk
  is a range of those ids (``first``..``last``) for one integration: one job.
- *PostgreSQL*: ``start`` queues the chunks as Procrastinate jobs (task ``CHUNK_TASK``, queue
  ``backfill``); ``linker worker`` processes take them. ``status`` reads the jobs and the
  progress and outcome rows (the tables the dashboard shows); ``cancel`` cancels the queued
  chunks and asks the running ones to stop after their batch. A worker killed mid-chunk
  leaves its job ``doing``; another worker's stalled-job task puts it back (see
  ``linker.services.jobs``) and the retry resumes from the chunk's progress rows.
- *SQLite* (no job queue): ``run_inline`` plans the same chunks and runs the same job
  function, one chunk after another, in the caller's own process.
- *Shards* (``linker autolink backfill --shard I/N``, either database): ``run_inline`` with
  ``shard=(I, N)`` plans and runs only the chunks of the profiles with
  ``crc32(id) % N == I``, holding the shard's lease. N processes, one per shard, share the
  work exactly once whenever each starts: the partition is by id, not by the plan (a
  plan, being of what is pending when it is made, differs between processes started at
  different times). Progress, resume and completion are those of every chunk.
- Every chunk runs ``BackfillService.run_chunk``: the same pipeline, leases (``chunk I/N``)
  and invariants as an in-process run (one link per profile and integration; one outcome per
  attempt; links left without data are finished).
- *Healing* covers the whole selection once per run: the first chunk of each integration
  (``Chunk.heal``; a chunk of no profile when nothing is pending but links lack their data)
  refreshes the links made before the run started; a chunk retried after a crash, those of
  its own range made since.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from linker.core.autolink import Outcome
from linker.core.permissions import Actor, Permission, Role
from linker.services.audit import record_audit
from linker.services.autolinking import AutolinkTrigger
from linker.services.backfill import (
    MAX_CONCURRENCY,
    BackfillProgress,
    BackfillService,
    BackfillSummary,
    in_shard,
    run_key,
)
from linker.services.backfill_live import LiveRun, Registered, live_runs, request_cancel
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput
from linker.services.leases import acquire, holder_name, release
from linker.store import backfill_runs as runs_store
from linker.store import integrations as integrations_store
from linker.store import jobqueue

CHUNK_TASK = "linker.backfill_chunk"
BACKFILL_QUEUE = "backfill"
CHUNK_SIZE = 500
"""Default profiles per chunk job."""
MAX_CHUNK_SIZE = 100_000
STALLED_AFTER_S = 30.0
"""A worker whose heartbeat is older than this is taken for dead (its jobs are retried)."""
FINAL = ("succeeded", "failed", "cancelled", "aborted")


@dataclass(frozen=True)
class Chunk:
    """One chunk job: the pending profiles ``first``..``last`` (``size`` of them when planned)
    of one integration, part ``index`` of ``count`` of that integration in run ``run``."""

    run: str
    integration_id: int
    index: int
    count: int
    first: str
    last: str
    size: int
    concurrency: int
    username: str
    role: str
    started_at: str
    heal: bool = False
    """The integration's healing chunk (one per run, or per shard): it also refreshes the
    links made before the run started that have no pulled data (``run_chunk``)."""

    def as_args(self) -> dict[str, Any]:
        """The job's JSON arguments."""
        return asdict(self)

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> Chunk:
        """The chunk of a job's arguments."""
        return cls(**{name: args[name] for name in cls.__dataclass_fields__ if name in args})


@dataclass(frozen=True)
class RunStatus:
    """Where a backfill run split into jobs is (read from the database)."""

    run: str
    integrations: tuple[str, ...]
    started_at: datetime | None
    chunks: dict[str, int]
    """Chunk jobs per job status (todo, doing, succeeded, failed, cancelled, aborted)."""
    total: int
    """Profile × integration pairs planned."""
    done: int
    counts: dict[str, int] = field(default_factory=dict)
    """Backfill outcomes recorded for these integrations since the run started."""

    @property
    def active(self) -> bool:
        """True while a chunk is queued or running."""
        return bool(self.chunks.get("todo", 0) + self.chunks.get("doing", 0))

    @property
    def cancelled(self) -> bool:
        """True when a chunk was cancelled or aborted (the run can be resumed)."""
        return bool(self.chunks.get("cancelled", 0) + self.chunks.get("aborted", 0))

    def progress(self) -> BackfillProgress:
        """The status as the progress bars of the CLI and the page take it."""
        elapsed = 0.0
        if self.started_at is not None:
            elapsed = max(0.0, time.time() - self.started_at.timestamp())
        return BackfillProgress(self.done, self.total, dict(self.counts), elapsed)


class BackfillJobs:
    """Starts, follows and cancels backfills split into chunk jobs (module docstring)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # -- planning ---------------------------------------------------------------------------

    def plan(self, actor: Actor, *, integration_ids: Sequence[int] | None = None,
             concurrency: int = 8, chunk_size: int = CHUNK_SIZE,
             shard: tuple[int, int] | None = None) -> list[Chunk]:
        """The chunks of a new run (nothing is queued); with ``shard=(I, N)`` only of the
        profiles with ``crc32(id) % N == I``. Raises PermissionDenied without RUN_BACKFILL and
        InvalidInput for bad arguments or unusable integrations."""
        actor.require(Permission.RUN_BACKFILL, "run an auto-link backfill")
        problems: dict[str, str] = {}
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            problems["concurrency"] = f"must be between 1 and {MAX_CONCURRENCY}"
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            problems["chunk_size"] = f"must be between 1 and {MAX_CHUNK_SIZE}"
        if shard is not None and not 0 <= shard[0] < shard[1]:
            problems["shard"] = "write I/N with 0 <= I < N"
        if problems:
            raise InvalidInput(problems)
        integrations = BackfillService(self.ctx).plan_integrations(integration_ids)
        run = secrets.token_hex(8)
        now = self.ctx.now()
        started = now.isoformat()
        chunks: list[Chunk] = []
        with self.ctx.db.session(readonly=True) as session:
            for integration in integrations:
                ids = _pending_ids(session, integration.id, shard=shard)
                parts = [ids[i:i + chunk_size] for i in range(0, len(ids), chunk_size)]
                if not parts and any(in_shard(cid, shard) for cid, _ in
                                     runs_store.links_without_data(
                                         session, [integration.id], created_before=now)):
                    parts = [[]]  # nothing pending, links to heal: one chunk heals them
                chunks.extend(
                    Chunk(run, integration.id, n, len(parts), part[0] if part else "",
                          part[-1] if part else "", len(part), concurrency, actor.username,
                          actor.role.value, started, heal=n == 0)
                    for n, part in enumerate(parts))
        return chunks

    # -- PostgreSQL: queued jobs --------------------------------------------------------------

    def start(self, actor: Actor, *, integration_ids: Sequence[int] | None = None,
              concurrency: int = 8, chunk_size: int = CHUNK_SIZE) -> RunStatus:
        """Queue a run's chunk jobs (PostgreSQL). Refused (Conflict) while another backfill
        of one of its integrations is queued or running; InvalidInput on SQLite."""
        if self.ctx.db.is_sqlite:
            raise InvalidInput({"via_workers": "SQLite has no job queue: the backfill runs in "
                                "this process (leave out --via-workers, or use PostgreSQL)"})
        actor.require(Permission.RUN_BACKFILL, "run an auto-link backfill")
        ids = sorted(i.id for i in BackfillService(self.ctx).plan_integrations(integration_ids))
        self._refuse_if_busy(actor, ids)
        chunks = self.plan(actor, integration_ids=ids, concurrency=concurrency,
                           chunk_size=chunk_size)
        run = chunks[0].run if chunks else secrets.token_hex(8)
        if chunks:
            with _open_app(self.ctx) as app:
                app.configure_task(CHUNK_TASK, queue=BACKFILL_QUEUE).batch_defer(
                    *(c.as_args() for c in chunks))
        with self.ctx.db.session() as session:
            record_audit(session, actor, "backfill.queue", "backfill", run, None, {
                "integrations": ids, "chunks": len(chunks),
                "profiles": sum(c.size for c in chunks), "concurrency": concurrency})
        return self.status(actor, run) if chunks else RunStatus(run, (), None, {}, 0, 0)

    def status(self, actor: Actor, run: str) -> RunStatus:
        """The run's chunks per status, pairs done of the total, outcomes so far."""
        actor.require(Permission.RUN_BACKFILL, "follow an auto-link backfill")
        with self.ctx.db.session(readonly=True) as session:
            rows = jobqueue.jobs_of_run(session, CHUNK_TASK, run)
            return _status(session, run,
                           [(r.status, r.attempts, Chunk.from_args(r.args)) for r in rows])

    def latest_run(self, actor: Actor) -> str | None:
        """The newest run queued (None when there is none or on SQLite)."""
        actor.require(Permission.RUN_BACKFILL, "follow an auto-link backfill")
        if self.ctx.db.is_sqlite:
            return None
        with self.ctx.db.session(readonly=True) as session:
            return jobqueue.latest_run(session, CHUNK_TASK)

    def running(self, actor: Actor) -> list[LiveRun]:
        """Every backfill running in a process of the database (whole runs, chunks run in
        one process, shards), oldest first; queued chunk jobs are ``status``'s."""
        actor.require(Permission.RUN_BACKFILL, "follow an auto-link backfill")
        return live_runs(self.ctx.db, self.ctx.now())

    def cancel(self, actor: Actor, run: str) -> int:
        """Cancel the run's queued chunks and ask its running ones to stop after their batch
        (what they did is kept; a new run resumes); a run going on in a process (``running``)
        is asked to stop after its batch. Returns how many jobs and processes were told."""
        actor.require(Permission.RUN_BACKFILL, "cancel an auto-link backfill")
        told = int(request_cancel(self.ctx.db, run, self.ctx.now()))
        rows: list[Any] = []
        if not self.ctx.db.is_sqlite:
            with self.ctx.db.session(readonly=True) as session:
                rows = [r for r in jobqueue.jobs_of_run(session, CHUNK_TASK, run)
                        if r.status in jobqueue.ACTIVE_STATUSES]
        if rows:
            with _open_app(self.ctx) as app:
                for row in rows:
                    app.job_manager.cancel_job_by_id(row.id, abort=True)
        with self.ctx.db.session() as session:
            record_audit(session, actor, "backfill.cancel", "backfill", run, None,
                         {"jobs": len(rows), "processes": told})
        return len(rows) + told

    def workers_present(self, stalled_after_s: float = STALLED_AFTER_S) -> bool:
        """True on PostgreSQL when at least one worker has a fresh heartbeat."""
        if self.ctx.db.is_sqlite:
            return False
        with self.ctx.db.session(readonly=True) as session:
            return jobqueue.live_workers(session, stalled_after_s) > 0

    def _refuse_if_busy(self, actor: Actor, integration_ids: list[int]) -> None:
        with self.ctx.db.session(readonly=True) as session:
            active = jobqueue.active_jobs_of_integrations(session, CHUNK_TASK, integration_ids)
            names = integrations_store.names_of(session, integration_ids)
        if active:
            first = Chunk.from_args(active[0].args)
            raise Conflict(
                f"a backfill of {names.get(first.integration_id, first.integration_id)} is "
                f"already queued as jobs (run {first.run}, {len(active)} chunk(s) to do or "
                f"running); wait for it or cancel it (`linker autolink cancel {first.run}`)")
        # An in-process run holding a lease refuses too (BackfillBusy names it).
        lease = acquire(self.ctx.db, [(i, names.get(i, str(i))) for i in integration_ids],
                        holder_name(actor.username), self.ctx.now())
        release(self.ctx.db, lease)

    # -- the job ------------------------------------------------------------------------------

    def run_chunk_job(self, chunk: Chunk, *, cancel: threading.Event | None = None,
                      progress: Callable[[BackfillProgress], None] | None = None,
                      shard: tuple[int, int] | None = None) -> BackfillSummary:
        """Run one chunk (the body of the ``CHUNK_TASK`` job, here or in a worker): the
        profiles of its range (of ``shard``, when given) still pending for its integration,
        as its starter; the healing chunk first refreshes the links left without pulled data
        (``BackfillService.run_chunk``)."""
        actor = Actor(chunk.username, Role(chunk.role))
        ids: list[str] = []
        if chunk.size:
            with self.ctx.db.session(readonly=True) as session:
                ids = _pending_ids(session, chunk.integration_id, chunk.first, chunk.last,
                                   shard)
        return BackfillService(self.ctx).run_chunk(
            actor, chunk.integration_id, ids, chunk=(chunk.index, chunk.count), shard=shard,
            started=datetime.fromisoformat(chunk.started_at), heal_all=chunk.heal,
            span=(chunk.first, chunk.last) if chunk.size else None,
            concurrency=chunk.concurrency, cancel=cancel, progress=progress)

    # -- SQLite: the same jobs in this process ------------------------------------------------

    def run_inline(self, actor: Actor, *, integration_ids: Sequence[int] | None = None,
                   concurrency: int = 8, chunk_size: int = CHUNK_SIZE,
                   progress: Callable[[BackfillProgress], None] | None = None,
                   cancel: threading.Event | None = None,
                   shard: tuple[int, int] | None = None) -> RunStatus:
        """Plan the chunks (of ``shard`` only, when given) and run each in this process, one
        after another (no job queue); ``cancel`` stops after the batches in flight. The run is
        registered while it goes (``linker.services.backfill_live``): ``running`` lists it
        and ``cancel`` stops it from any process."""
        chunks = self.plan(actor, integration_ids=integration_ids, concurrency=concurrency,
                           chunk_size=chunk_size, shard=shard)
        if not chunks:
            return RunStatus("", (), None, {}, 0, 0)
        with self.ctx.db.session(readonly=True) as session:
            names = integrations_store.names_of(session, sorted({c.integration_id
                                                                 for c in chunks}))
        with Registered(self.ctx.db, self.ctx.now, chunks[0].run, list(names.values()),
                        f"{shard[0]}/{shard[1]}" if shard else "chunks",
                        holder_name(actor.username), sum(c.size for c in chunks),
                        cancel) as live:
            states = self._run_chunks_here(chunks, live.tracking(progress), live.cancel,
                                           shard)
        with self.ctx.db.session(readonly=True) as session:
            return _status(session, chunks[0].run, states, shard)

    def _run_chunks_here(self, chunks: list[Chunk],
                         progress: Callable[[BackfillProgress], None],
                         cancel: threading.Event, shard: tuple[int, int] | None
                         ) -> list[tuple[str, int, Chunk]]:
        """Run the chunks one after another; each one's (status, attempts, chunk)."""
        states: list[tuple[str, int, Chunk]] = [("todo", 0, c) for c in chunks]
        done_before = 0
        start = time.perf_counter()
        total = sum(c.size for c in chunks)
        counts = {o.value: 0 for o in Outcome}
        for n, chunk in enumerate(chunks):
            if cancel.is_set():
                states[n:] = [("cancelled", 0, c) for _, _, c in states[n:]]
                break

            def report(p: BackfillProgress, base: int = done_before) -> None:
                merged = {k: counts[k] + p.counts.get(k, 0) for k in counts}
                progress(BackfillProgress(base + p.done, total, merged,
                                          time.perf_counter() - start))

            summary = self.run_chunk_job(chunk, cancel=cancel, progress=report, shard=shard)
            for key, value in summary.counts.items():
                counts[key] += value
            done_before += summary.done
            states[n] = ("aborted" if summary.cancelled else "succeeded", 1, chunk)
        return states


def _open_app(ctx: ServiceContext) -> Any:
    """Procrastinate's app on the context's database, opened for deferring (sync)."""
    from procrastinate import App

    return App(connector=jobqueue.connector(ctx.db.url)).open()


def _pending_ids(session: Any, integration_id: int, first: str | None = None,
                 last: str | None = None, shard: tuple[int, int] | None = None) -> list[str]:
    """Profiles not linked to the integration and not done under its progress key, in id
    order (only ``first``..``last`` and of ``shard`` when given)."""
    ids = runs_store.pending_ids(session, integration_id, run_key([integration_id]), first,
                                 last)
    return [cid for cid in ids if in_shard(cid, shard)]


def _status(session: Any, run: str, chunks: list[tuple[str, int, Chunk]],
            shard: tuple[int, int] | None = None) -> RunStatus:
    """A RunStatus from the chunks' (job status, attempts, chunk) and the progress and
    outcome rows: a succeeded chunk counts whole, a started one by its progress rows (of
    ``shard``'s profiles only, when given: other shards' rows share the chunk's range)."""
    per_status: dict[str, int] = {}
    for status, _, _ in chunks:
        per_status[status] = per_status.get(status, 0) + 1
    if not chunks:
        return RunStatus(run, (), None, per_status, 0, 0)
    started = datetime.fromisoformat(chunks[0][2].started_at)
    ids = sorted({c.integration_id for _, _, c in chunks})
    done = 0
    for status, attempts, chunk in chunks:
        if status == "succeeded":
            done += chunk.size
        elif status != "todo" or attempts:
            mine = [cid for cid in runs_store.progress_ids(
                session, run_key([chunk.integration_id]), chunk.first, chunk.last, started)
                if in_shard(cid, shard)]
            done += min(chunk.size, len(mine))
    counts = {o.value: 0 for o in Outcome}
    counts.update(runs_store.outcome_counts(session, ids, AutolinkTrigger.BACKFILL.value,
                                            started))
    names = integrations_store.names_of(session, ids)
    return RunStatus(run, tuple(names.get(i, str(i)) for i in ids), started, per_status,
                     sum(c.size for _, _, c in chunks), done, counts)
