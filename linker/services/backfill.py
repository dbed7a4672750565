"""Backfill: run auto-linking over existing unlinked profiles, concurrently, resumably.

How it works:

- *What*: every profile not yet linked to all of the chosen integrations (default: every active
  integration with auto-linking on and at least one field), in id order. Splitting the work
  over processes is ``linker.services.backfill_jobs``: chunk jobs (``run_chunk``) that workers
  take, or the chunks of one shard (``crc32(customer id) % N == I``) in this process.
- *Concurrency*: profiles go in batches, two launched at a time (the next is planned and
  started while one runs, so no request slot idles while a batch ends); their auto-link
  requests (and the DETAILED lookups after new links) run on one event loop with at most
  ``concurrency`` in flight over one connection pool; the database work runs in writer
  threads (one on SQLite, whose writes serialise anyway; two on PostgreSQL). The writes of
  the attempts waiting at a moment (record, then the DETAILED apply; a write lingers
  ``WRITE_LINGER_S`` for others) share one transaction (``_WriteBatcher``, at most
  ``WRITE_BATCH`` of them), written set-wise with a few multi-row statements
  (``record_attempts``, ``apply_refreshes``); if that transaction fails, each is retried in
  its own with the one-at-a-time functions, so one bad attempt never takes others down.
- *Resume*: after each batch its profiles are recorded in ``backfill_progress`` under a run key
  derived from the integration set. A run that stops early (cancelled, Ctrl-C, crash) leaves
  those rows, and the next run with the same integrations skips the profiles already done; a
  run that completes deletes them, so the next one starts afresh.
  Nothing is linked twice: linked pairs are never attempted, and the database's unique
  constraints turn a race into a ``conflict`` outcome.
- *One at a time*: a run holds a lease on each of its integrations (``linker.services.leases``)
  renewed while it runs; a second run over one of them (the same profiles: a whole run, the
  same chunk or shard, or one of another split) is refused with who holds it and since when.
  A crashed run's lease expires after a minute. Chunks or shards of one split run side by
  side.
- *Healing*: a real run first refreshes links to its integrations that have no pulled data
  (a run killed between linking and the DETAILED lookup leaves such links). A run split into
  chunks heals in its first chunk per integration (of a shard: the shard's profiles) the links
  made before it started, and each chunk those of its range made since (``run_chunk``).
- *Dry run*: sends the same auto-link requests and reports what would happen, but records
  nothing except the exchanges (trigger ``backfill``, actor ``<user> (backfill dry run)``): no
  link, no outcome, no progress. It ignores the progress of interrupted runs.
- *Progress*: ``progress`` hears each batch, in order; ``phases`` the steps before the first
  (healing, with links done of total; finding the profiles; then 0 of N), each with its start
  time, so a display moves even while one query runs.
- *Cancel*: the ``cancel`` event is checked before each batch is launched; the batches in
  flight (the one ending and the one launched behind it) complete.
- *Per-profile results*: the summary lists the attempts one by one (``results``), bounded to
  ``max_results`` (default 1,000) so memory stays flat over any number of profiles, listed
  would-be links first, then ambiguous, conflicting and failed attempts, then the others
  (each group in the order made). When there are more, the telling outcomes (``linked``,
  ``ambiguous``, ``conflict``, ``error``) are kept before the others, earlier attempts before
  later ones, and ``results_left_out`` says how many were dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

import httpx
from sqlalchemy.orm import Session

from linker.contract import RequestKind, detailed_request
from linker.core.autolink import AutolinkDecision, Outcome
from linker.core.permissions import Actor, Permission
from linker.lookup import Exchange, Trigger, run_sync
from linker.services.audit import record_audit
from linker.services.autolinking import (
    Attempt,
    AutolinkResult,
    AutolinkTrigger,
    IntegrationSnapshot,
    has_autolink_field,
    judge,
    plan_attempts,
    record_attempt,
    record_attempts,
    snapshot_integration,
)
from linker.services.backfill_live import Registered, new_run_id
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput
from linker.services.leases import LeaseKeeper, acquire, holder_name
from linker.services.refresh import apply_refresh, refresh_pairs
from linker.services.refresh_batch import apply_refreshes
from linker.services.refresh_outcome import RefreshPlan
from linker.store import backfill_runs as runs_store
from linker.store import integrations as integrations_store
from linker.store import links as links_store
from linker.store.exchanges import record_exchange

MAX_CONCURRENCY = 256
MAX_RESULTS = 1000
"""Default bound of the per-attempt results a summary lists."""
LISTED_FIRST = (Outcome.LINKED, Outcome.AMBIGUOUS, Outcome.CONFLICT, Outcome.ERROR)
"""The telling outcomes, in the order a summary lists them: would-be links first, then
ambiguous, conflicting and failed attempts; every other outcome after them."""
TELLING = frozenset(LISTED_FIRST)
"""Outcomes kept first when there are more attempts than ``max_results``."""
MAX_PG_WRITERS = 2
"""Writer threads on PostgreSQL: batches are set-wise, so a second one only overlaps a
transaction's round trips with the other's Python work; more would split the batches."""
WRITE_BATCH = 128
"""Most attempts' writes sharing one transaction."""
WRITE_LINGER_S = 0.02
"""How long a write waits for others to share its transaction (unless the batch is full):
a transaction's cost is mostly per statement, so fuller batches cost less per attempt."""
BATCHES_IN_FLIGHT = 2
"""Batches launched at a time: the next one is planned and started while one runs, so no
request slot idles while a batch ends (its last writes and DETAILED lookups) and the next
is planned; progress is still reported batch by batch, in order."""
HEAL_BATCH = 64
"""Links without pulled data refreshed per round at the start of a real run."""
DRY_RUN_NOTE = "backfill dry run"
T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


class BackfillPhase(StrEnum):
    """What a run is doing: its steps before the first batch, then trying the profiles."""

    HEALING = "healing interrupted links"
    """Refreshing links of earlier runs that have no pulled data (real runs only)."""
    FINDING = "finding profiles to try"
    """Reading which profiles are not linked to every chosen integration."""
    TRYING = "trying profiles"
    """The batches: ``done`` of ``total`` profiles."""


@dataclass(frozen=True)
class BackfillProgress:
    """Where a running backfill is: profiles done of the total, and outcomes so far.

    Before the first batch (``phase`` HEALING or FINDING) ``done`` and ``total`` count that
    step's items (links healed of those to heal; nothing while finding) and ``since`` is when
    the step began (``time.time()``), so a display can say how long it has taken."""

    done: int
    total: int
    counts: dict[str, int]
    elapsed_s: float
    phase: BackfillPhase = BackfillPhase.TRYING
    since: float | None = None
    """Wall-clock start of the step (``time.time()``); None for the batches' reports."""

    @property
    def fraction(self) -> float:
        """Share of the step done (1.0 when there is nothing to do; 0.0 while finding)."""
        if self.phase is BackfillPhase.FINDING:
            return 0.0
        return self.done / self.total if self.total else 1.0

    def step_text(self, now: float | None = None) -> str:
        """The step in words with how long it has taken so far (``now``: ``time.time()``),
        e.g. ``finding profiles to try… 12 s``; while trying profiles, ``done of total``."""
        if self.phase is BackfillPhase.TRYING:
            return f"{self.done} of {self.total} profiles"
        took = max(0.0, (time.time() if now is None else now) - (self.since or 0.0))
        items = f": {self.done:,} of {self.total:,} links" if self.total else ""
        return f"{self.phase.value}{items}… {took:.0f} s"


@dataclass(frozen=True)
class BackfillAttempt:
    """One (profile, integration) attempt of a backfill: what happened (or, in a dry run, would
    happen) and why. In a dry run ``linked`` means *would link*."""

    customer_id: str
    customer_name: str
    integration_name: str
    outcome: Outcome
    reason: str
    external_customer_id: str | None = None
    exchange_id: int | None = None
    """The stored auto-link exchange (None when no request was sent)."""
    refresh_error: str | None = None
    """Real runs: why the DETAILED lookup after a new link failed (the link stays)."""


class _ResultLog:
    """The ``limit`` most telling attempts of a run, in O(limit) memory.

    Rank: telling outcomes (``TELLING``) first, then order of arrival. The heap holds the
    kept entries keyed so that its top is the least telling (the one to drop first).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0
        self._heap: list[tuple[int, int, BackfillAttempt]] = []

    def add(self, entry: BackfillAttempt) -> None:
        rank = 0 if entry.outcome in TELLING else 1
        item = (-rank, -self.seen, entry)
        self.seen += 1
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif self._heap and -self._heap[0][0] > rank:
            heapq.heapreplace(self._heap, item)  # drops a less telling, kept entry

    @property
    def left_out(self) -> int:
        return self.seen - len(self._heap)

    def entries(self) -> tuple[BackfillAttempt, ...]:
        """The kept attempts in ``LISTED_FIRST`` order (would-be links first), the other
        outcomes last; each group in the order the attempts were made."""
        return tuple(entry for _, _, entry in sorted(
            self._heap, key=lambda i: (listing_rank(i[2].outcome), -i[1])))


def listing_rank(outcome: Outcome) -> int:
    """Where an outcome's attempts come in a summary's listing (see ``LISTED_FIRST``)."""
    return LISTED_FIRST.index(outcome) if outcome in TELLING else len(LISTED_FIRST)


@dataclass(frozen=True)
class BackfillSummary:
    """What a backfill run did (or, in a dry run, would do)."""

    run_key: str
    dry_run: bool
    integrations: tuple[str, ...]
    total: int
    """Profiles this run set out to process (after skipping those already done)."""
    done: int
    resumed: int
    """Profiles skipped because an interrupted earlier run with the same key did them."""
    counts: dict[str, int]
    """Attempts per outcome (one attempt per profile × integration); every outcome present."""
    elapsed_s: float
    cancelled: bool
    results: tuple[BackfillAttempt, ...] = ()
    """The attempts one by one, at most ``max_results`` of them, in ``LISTED_FIRST`` order
    (would-be links first; each outcome's in the order made): telling outcomes (linked,
    ambiguous, conflict, error) are kept before the others."""
    results_left_out: int = 0
    """Attempts made but not listed in ``results`` (0 when every attempt is listed)."""
    healed: int = 0
    """Links of earlier runs still without their DETAILED data (e.g. after a crash) that this
    run refreshed successfully before it began."""
    heal_failed: int = 0
    """Such links whose refresh failed again (they are retried by the next run and when the
    profile is opened)."""
    lease_lost: bool = False
    """True when the run stopped early because its lease was taken over (it had stalled for
    longer than the lease lasts)."""

    @property
    def profiles_per_second(self) -> float:
        """Throughput of this run (0 when nothing was done)."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def attempts(self) -> int:
        """Auto-link attempts made (or simulated)."""
        return sum(self.counts.values())


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)``; raises InvalidInput unless 0 <= I < N."""
    index, sep, count = text.strip().partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = (-1, 0)
    if not sep or not 0 <= shard[0] < shard[1]:
        raise InvalidInput({"shard": f"{text!r} is not a shard; write I/N with 0 <= I < N, "
                            "e.g. 0/4 for the first of four workers"})
    return shard


def in_shard(customer_id: str, shard: tuple[int, int] | None) -> bool:
    """True when the customer belongs to the shard (stable: crc32 of the id, modulo N)."""
    if shard is None:
        return True
    return zlib.crc32(customer_id.encode("utf-8")) % shard[1] == shard[0]


def run_key(integration_ids: Sequence[int]) -> str:
    """The progress key of a run: the sorted integration ids (a chunk's: its integration's)."""
    ids = ",".join(str(i) for i in sorted(set(integration_ids)))
    if len(ids) > 60:
        ids = "h" + hashlib.sha256(ids.encode()).hexdigest()[:16]
    return f"autolink:{ids}"


def _zeros() -> dict[str, int]:
    return {o.value: 0 for o in Outcome}


def _batches(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True)
class _WriteStep(Generic[P, R]):
    """A write the batcher runs for the items waiting together (``many``, one call in one
    transaction) or, when that transaction fails, for each alone (``one``)."""

    many: Callable[[Session, list[P]], list[R]]
    one: Callable[[Session, P], R]


@dataclass(frozen=True)
class _Steps:
    """The write steps of one run."""

    record: _WriteStep[tuple[Attempt, Exchange | None],
                       tuple[AutolinkResult, RefreshPlan | None]]
    refresh: _WriteStep[tuple[RefreshPlan, Exchange | None], str | None]


class _WriteBatcher:
    """Runs write steps for many tasks: the items waiting together go to one transaction on the
    writer pool, each step called once for all of its items; at most ``drains`` transactions
    at a time."""

    def __init__(self, ctx: ServiceContext, in_db: Callable[..., Any], drains: int) -> None:
        self.ctx = ctx
        self.in_db = in_db
        self.drains = drains
        self.running = 0
        self.queue: list[tuple[_WriteStep[Any, Any], Any, asyncio.Future[Any]]] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, step: _WriteStep[P, R], item: P) -> R:
        """The result of ``step`` for ``item`` once its transaction has committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.queue.append((step, item, future))
        if self.running < self.drains:
            self.running += 1
            task = asyncio.ensure_future(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                if len(self.queue) < WRITE_BATCH:
                    await asyncio.sleep(WRITE_LINGER_S)
                    if not self.queue:  # another drain took them meanwhile
                        break
                items, self.queue = self.queue[:WRITE_BATCH], self.queue[WRITE_BATCH:]
                try:
                    outcomes = await self.in_db(self._execute,
                                                [(step, item) for step, item, _ in items])
                except BaseException as exc:  # the pool is gone (shutdown): fail the waiters
                    outcomes = [(False, exc)] * len(items)
                for (_, _, future), (ok, value) in zip(items, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self.running -= 1

    def _execute(self, items: list[tuple[_WriteStep[Any, Any], Any]]
                 ) -> list[tuple[bool, Any]]:
        """All in one transaction; if it fails, each in its own (writer thread)."""
        groups: dict[int, tuple[_WriteStep[Any, Any], list[int]]] = {}
        for k, (step, _) in enumerate(items):
            groups.setdefault(id(step), (step, []))[1].append(k)
        try:
            results: list[Any] = [None] * len(items)
            with self.ctx.db.session() as session:
                for step, ks in groups.values():
                    done = step.many(session, [items[k][1] for k in ks])
                    for k, result in zip(ks, done, strict=True):
                        results[k] = result
            return [(True, r) for r in results]
        except Exception:  # retried one by one below, which reports the culprit
            pass
        outcomes: list[tuple[bool, Any]] = []
        for step, item in items:
            try:
                with self.ctx.db.session() as session:
                    outcomes.append((True, step.one(session, item)))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes


@dataclass
class _Run:
    """State of one run shared by its tasks."""

    actor: Actor
    integrations: list[IntegrationSnapshot]
    dry_run: bool
    concurrency: int
    key: str
    max_results: int
    chunk: bool = False
    """A chunk job of a run split into jobs: finishing clears the progress only when nothing
    of the integration is left pending (the other chunks are done too)."""


@dataclass(frozen=True)
class BackfillChoice:
    """An integration a backfill may run over."""

    id: int
    name: str


class _StepTeller:
    """Reports a run's steps before its first batch to the ``phases`` callback of ``run``."""

    def __init__(self, report: Callable[[BackfillProgress], None] | None) -> None:
        self.report = report
        self.phase: BackfillPhase | None = None
        self.since = time.time()

    def __call__(self, phase: BackfillPhase, done: int = 0, total: int = 0) -> None:
        """Tell that the run is at ``phase`` (``done`` of ``total`` of its items)."""
        if phase is not self.phase:
            self.phase, self.since = phase, time.time()
        if self.report is not None:
            self.report(BackfillProgress(done, total, _zeros(), time.time() - self.since,
                                         phase, self.since))

    def healing(self, done: int, total: int) -> None:
        """The healing step's progress (links refreshed of those without data)."""
        self(BackfillPhase.HEALING, done, total)


class BackfillService:
    """Auto-links existing unlinked profiles in bulk (see the module docstring)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    # -- public ---------------------------------------------------------------------------

    def run(
        self,
        actor: Actor,
        *,
        integration_ids: Sequence[int] | None = None,
        dry_run: bool = False,
        concurrency: int = 8,
        progress: Callable[[BackfillProgress], None] | None = None,
        cancel: threading.Event | None = None,
        batch_size: int | None = None,
        max_results: int = MAX_RESULTS,
        phases: Callable[[BackfillProgress], None] | None = None,
    ) -> BackfillSummary:
        """Auto-link every unlinked profile of the chosen integrations (all eligible by default).

        ``concurrency`` bounds requests in flight (1..256); ``progress`` is called after every
        batch, in order (in the calling thread); ``phases`` is called, in the calling thread,
        with the steps before the first batch: ``HEALING`` (real runs: before the links
        without data are read, once they are known and after each round of refreshes),
        ``FINDING`` (before the profiles are read), then ``TRYING`` 0 of N as soon as the
        profiles are known (a display passes one function as both); ``cancel`` is checked
        before each batch is launched (the two in flight complete); ``max_results`` bounds
        the per-attempt ``results`` of the summary (0 lists none). Raises PermissionDenied
        without RUN_BACKFILL and InvalidInput for bad arguments or unusable integrations.
        Several processes split a backfill with ``BackfillJobs`` (chunk jobs, or one shard
        per process)."""
        actor.require(Permission.RUN_BACKFILL, "run an auto-link backfill")
        problems: dict[str, str] = {}
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            problems["concurrency"] = f"must be between 1 and {MAX_CONCURRENCY}"
        if batch_size is not None and batch_size < 1:
            problems["batch_size"] = "must be at least 1"
        if max_results < 0:
            problems["max_results"] = "must be 0 or more"
        if problems:
            raise InvalidInput(problems)
        integrations = self._integrations(integration_ids)
        state = _Run(actor, integrations, dry_run, concurrency,
                     run_key([i.id for i in integrations]), max_results)
        tell = _StepTeller(phases)
        lease = acquire(self.ctx.db, [(i.id, i.name) for i in integrations],
                        holder_name(actor.username), self.ctx.now())
        with LeaseKeeper(self.ctx.db, lease, self.ctx.now) as keeper, Registered(
                self.ctx.db, self.ctx.now, new_run_id(), [i.name for i in integrations],
                "dry run" if dry_run else "", lease.holder, 0, cancel) as live:
            healed, heal_failed = (0, 0) if dry_run else self._heal(
                state, None, live.cancel, tell=tell.healing)
            tell(BackfillPhase.FINDING)
            pending, resumed = self._pending(state)
            live.report(0, len(pending))
            tell(BackfillPhase.TRYING, 0, len(pending))
            size = batch_size or max(64, concurrency * 16)
            summary = run_sync(lambda: self._run_async(state, pending, resumed, size,
                                                       live.tracking(progress), live.cancel,
                                                       keeper.lost))
        return replace(summary, healed=healed, heal_failed=heal_failed,
                       lease_lost=keeper.lost.is_set())

    def run_chunk(
        self,
        actor: Actor,
        integration_id: int,
        customer_ids: Sequence[str],
        *,
        chunk: tuple[int, int],
        shard: tuple[int, int] | None = None,
        started: datetime | None = None,
        heal_all: bool = False,
        span: tuple[str, str] | None = None,
        concurrency: int = 8,
        progress: Callable[[BackfillProgress], None] | None = None,
        cancel: threading.Event | None = None,
        max_results: int = 0,
    ) -> BackfillSummary:
        """Backfill one chunk of a run split into jobs (``linker.services.backfill_jobs``): the
        given profiles, for one integration, through the same pipeline as ``run``.

        Progress goes under the integration's own key (``run_key([id])``, the key of a whole
        in-process run of that integration alone), so either resumes the other. The lease is
        ``chunk=(I, N)``: the N chunks of one run go side by side on any number of workers;
        any other run over the integration is refused (BackfillBusy). A chunk of ``shard``
        (its profiles only, ``crc32(id) % N == I``) holds the shard's lease instead, so the
        shards of one split go side by side.

        Healing (links left without pulled data, e.g. by a process killed between linking
        and the DETAILED lookup), given the run's ``started`` time: with ``heal_all`` (one
        chunk per integration and run) every such link of the integration (of the shard)
        made before the run started; and every chunk the links of its own range of ids
        (``span``, default the lowest to the highest given) made since (only an earlier,
        killed attempt of this very chunk makes those). So each link
        is refreshed by one chunk, never while another chunk's lookup of it is in flight.
        When the chunk leaves nothing of the integration pending, the run is complete and
        its progress is cleared.
        """
        actor.require(Permission.RUN_BACKFILL, "run an auto-link backfill")
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise InvalidInput({"concurrency": f"must be between 1 and {MAX_CONCURRENCY}"})
        integrations = self._integrations([integration_id])
        state = _Run(actor, integrations, False, concurrency, run_key([integration_id]),
                     max_results, chunk=True)
        lease = acquire(self.ctx.db, [(i.id, i.name) for i in integrations],
                        holder_name(actor.username), self.ctx.now(), shard=shard,
                        chunk=None if shard else chunk)
        with LeaseKeeper(self.ctx.db, lease, self.ctx.now) as keeper:
            if span is None and customer_ids:
                span = (min(customer_ids), max(customer_ids))
            healed, heal_failed = self._heal_chunk(state, span, shard, started, heal_all,
                                                   cancel)
            with self.ctx.db.session(readonly=True) as session:
                done = runs_store.done_ids(session, state.key, customer_ids)
            pending = [cid for cid in customer_ids if cid not in done]
            size = max(64, concurrency * 16)
            summary = run_sync(lambda: self._run_async(
                state, pending, len(customer_ids) - len(pending), size, progress, cancel,
                keeper.lost))
        return replace(summary, healed=healed, heal_failed=heal_failed,
                       lease_lost=keeper.lost.is_set())

    def plan_integrations(self, ids: Sequence[int] | None) -> list[IntegrationSnapshot]:
        """The integrations a backfill over ``ids`` (None: every eligible one) would use;
        InvalidInput names the unusable ones."""
        return self._integrations(ids)

    def eligible(self, actor: Actor) -> list[BackfillChoice]:
        """The integrations a backfill may run over, by name: active, auto-linking on and at
        least one auto-linking field (what ``run`` takes when none is chosen)."""
        actor.require(Permission.RUN_BACKFILL, "run an auto-link backfill")
        with self.ctx.db.session(readonly=True) as session:
            return [BackfillChoice(i.id, i.name)
                    for i in integrations_store.with_autolink_on(session)
                    if has_autolink_field(i)]

    def _heal_chunk(self, state: _Run, span: tuple[str, str] | None,
                    shard: tuple[int, int] | None, started: datetime | None, heal_all: bool,
                    cancel: threading.Event | None) -> tuple[int, int]:
        """A chunk's healing (``run_chunk``): (healed, failed)."""
        if started is None:
            return 0, 0
        healed, failed = self._heal(state, shard, cancel, before=started) if heal_all \
            else (0, 0)
        if span is not None:
            mine = self._heal(state, shard, cancel, span, since=started)
            healed, failed = healed + mine[0], failed + mine[1]
        return healed, failed

    def _heal(self, state: _Run, shard: tuple[int, int] | None,
              cancel: threading.Event | None, only: tuple[str, str] | None = None, *,
              before: datetime | None = None, since: datetime | None = None,
              tell: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Refresh links to the run's integrations that have no successfully pulled data
        (a run killed between linking and its DETAILED lookup leaves such links); ``shard``,
        ``only``, ``before`` and ``since`` limit it to the shard's profiles, to those with
        ids from ``only[0]`` to ``only[1]`` and to links made before / since a time.
        ``tell(done, total)`` hears where it is: 0 of 0 before the links are read, 0 of N
        once they are (when there are any), then after each round."""
        tell = tell or (lambda done, total: None)
        tell(0, 0)
        with self.ctx.db.session(readonly=True) as session:
            rows = runs_store.links_without_data(
                session, [i.id for i in state.integrations], only, created_before=before,
                created_since=since)
        pairs = [(cid, iid) for cid, iid in rows if in_shard(cid, shard)]
        healed = failed = 0
        if pairs:
            tell(0, len(pairs))
        for start in range(0, len(pairs), HEAL_BATCH):
            if cancel is not None and cancel.is_set():
                break
            outcomes = refresh_pairs(self.ctx, state.actor, pairs[start:start + HEAL_BATCH])
            healed += sum(1 for o in outcomes if o.ok)
            failed += sum(1 for o in outcomes if not o.ok)
            tell(healed + failed, len(pairs))
        return healed, failed

    # -- planning -------------------------------------------------------------------------

    def _integrations(self, ids: Sequence[int] | None) -> list[IntegrationSnapshot]:
        with self.ctx.db.session(readonly=True) as session:
            found = integrations_store.with_autolink_on(
                session, None if ids is None else set(ids))
            snapshots = [snapshot_integration(self.ctx, i) for i in found]
        if ids is None:
            usable = [s for s in snapshots if s.fields]
            if not usable:
                raise InvalidInput({"integrations": "no active integration has auto-linking on "
                                    "with at least one auto-linking field; turn it on first"})
            return usable
        unusable = sorted(set(ids) - {s.id for s in snapshots})
        no_fields = [s.name for s in snapshots if not s.fields]
        if unusable or no_fields:
            parts = []
            if unusable:
                parts.append(f"integration(s) {', '.join(map(str, unusable))} do not exist, are "
                             "inactive or have auto-linking off")
            if no_fields:
                parts.append(f"{', '.join(no_fields)} have no auto-linking field")
            raise InvalidInput({"integrations": "; ".join(parts) + "; fix them or leave them "
                                "out"})
        return snapshots

    def _pending(self, state: _Run) -> tuple[list[str], int]:
        """Profiles not linked to every chosen integration, minus those done."""
        with self.ctx.db.session(readonly=True) as session:
            candidates = runs_store.not_linked_to_all(
                session, [i.id for i in state.integrations])
            done = set() if state.dry_run else runs_store.done_ids(session, state.key)
        pending = [cid for cid in candidates if cid not in done]
        return pending, len(candidates) - len(pending)

    # -- the async pipeline ---------------------------------------------------------------

    async def _run_async(self, state: _Run, pending: list[str], resumed: int, size: int,
                         progress: Callable[[BackfillProgress], None] | None,
                         cancel: threading.Event | None,
                         lease_lost: threading.Event) -> BackfillSummary:
        start = time.perf_counter()
        counts = _zeros()
        log = _ResultLog(state.max_results)
        done = 0
        cancelled = False
        writers = 1 if self.ctx.db.is_sqlite else min(state.concurrency, MAX_PG_WRITERS)
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(writers, thread_name_prefix="linker-backfill-db") as pool:

            async def in_db(fn: Callable[..., T], *args: Any) -> T:
                return await loop.run_in_executor(pool, fn, *args)

            slots = asyncio.Semaphore(state.concurrency)
            writes = _WriteBatcher(self.ctx, in_db, writers)
            steps = self._steps(state)
            async with self.ctx.client.http_client() as http:
                launched: deque[tuple[Sequence[str], list[Attempt],
                                      asyncio.Future[list[AutolinkResult]]]] = deque()
                batches = iter(_batches(pending, size))
                try:
                    while True:
                        while not cancelled and len(launched) < BATCHES_IN_FLIGHT:
                            batch = next(batches, None)
                            if batch is None:
                                break
                            if (cancel is not None and cancel.is_set()) or lease_lost.is_set():
                                cancelled = True
                                break
                            attempts = await in_db(self._plan, state, batch)
                            launched.append((batch, attempts, asyncio.gather(*(
                                self._attempt(state, attempt, http, slots, in_db, writes,
                                              steps) for attempt in attempts))))
                        if not launched:
                            break
                        batch, attempts, running = launched.popleft()
                        results = await running
                        if not state.dry_run:
                            await in_db(self._mark_done, state.key, batch)
                        done += len(batch)
                        for attempt, result in zip(attempts, results, strict=True):
                            counts[result.outcome.value] += 1
                            log.add(_listed(attempt, result))
                        if progress is not None:
                            progress(BackfillProgress(done, len(pending), dict(counts),
                                                      time.perf_counter() - start))
                finally:
                    for _, _, running in launched:  # only after an error: stop the other batch
                        running.cancel()
            summary = BackfillSummary(
                run_key=state.key, dry_run=state.dry_run,
                integrations=tuple(i.name for i in state.integrations),
                total=len(pending), done=done, resumed=resumed, counts=counts,
                elapsed_s=time.perf_counter() - start, cancelled=cancelled,
                results=log.entries(), results_left_out=log.left_out)
            if not state.dry_run:
                await in_db(self._finish, state, summary)
        return summary

    async def _attempt(self, state: _Run, attempt: Attempt, http: httpx.AsyncClient,
                       slots: asyncio.Semaphore, in_db: Callable[..., Any],
                       writes: _WriteBatcher, steps: _Steps) -> AutolinkResult:
        """One attempt: send, record (or simulate), then refresh a new link."""
        exchange: Exchange | None = None
        target = attempt.integration.target
        if attempt.request is not None and target is not None:
            async with slots:
                exchange = await self.ctx.client.lookup(
                    target, attempt.request, kind=RequestKind.AUTOLINK,
                    trigger=Trigger.BACKFILL, client=http)
        if state.dry_run:
            dry: AutolinkResult = await in_db(self._simulate, state, attempt, exchange)
            return dry
        result: AutolinkResult
        plan: RefreshPlan | None
        result, plan = await writes.run(steps.record, (attempt, exchange))
        if plan is None:
            return result
        detailed: Exchange | None = None
        if plan.target is not None:
            async with slots:
                detailed = await self.ctx.client.lookup(
                    plan.target, plan.request, kind=RequestKind.DETAILED,
                    trigger=Trigger.DETAILED, client=http)
        error = await writes.run(steps.refresh, (plan, detailed))
        return replace(result, refresh_error=error) if error else result

    # -- database steps (writer threads) --------------------------------------------------

    def _plan(self, state: _Run, batch: Sequence[str]) -> list[Attempt]:
        with self.ctx.db.session(readonly=True) as session:
            return plan_attempts(session, batch, state.integrations)

    def _steps(self, state: _Run) -> _Steps:
        """The run's two write steps: record an attempt, apply a DETAILED answer."""
        return _Steps(
            record=_WriteStep(lambda session, items: self._record_many(session, state, items),
                              lambda session, item: self._record(session, state, *item)),
            refresh=_WriteStep(lambda session, items: self._apply_many(session, state, items),
                               lambda session, item: self._apply_refresh(session, state,
                                                                         *item)))

    def _record(self, session: Session, state: _Run, attempt: Attempt,
                exchange: Exchange | None) -> tuple[AutolinkResult, RefreshPlan | None]:
        result = record_attempt(session, state.actor, attempt, exchange,
                                trigger=AutolinkTrigger.BACKFILL, now=self.ctx.now())
        return result, _refresh_plan(attempt, result)

    def _record_many(self, session: Session, state: _Run,
                     items: list[tuple[Attempt, Exchange | None]]
                     ) -> list[tuple[AutolinkResult, RefreshPlan | None]]:
        results = record_attempts(session, state.actor, items,
                                  trigger=AutolinkTrigger.BACKFILL, now=self.ctx.now())
        return [(result, _refresh_plan(attempt, result))
                for (attempt, _), result in zip(items, results, strict=True)]

    def _apply_refresh(self, session: Session, state: _Run, plan: RefreshPlan,
                       exchange: Exchange | None) -> str | None:
        outcome = apply_refresh(self.ctx, session, state.actor, plan, exchange)
        return outcome.error

    def _apply_many(self, session: Session, state: _Run,
                    items: list[tuple[RefreshPlan, Exchange | None]]) -> list[str | None]:
        return [o.error for o in apply_refreshes(self.ctx, session, state.actor, items)]

    def _simulate(self, state: _Run, attempt: Attempt, exchange: Exchange | None
                  ) -> AutolinkResult:
        """What a real attempt would do, storing only the exchange."""
        with self.ctx.db.session() as session:
            exchange_id = None
            if exchange is not None:
                exchange_id = record_exchange(
                    session, exchange, integration_id=attempt.integration.id,
                    customer_id=attempt.profile.customer_id,
                    actor=f"{state.actor.username} ({DRY_RUN_NOTE})").id
            decision = judge(attempt, exchange)
            if decision.outcome is Outcome.LINKED:
                decision = _would_conflict(session, attempt, decision)
        return AutolinkResult(
            customer_id=attempt.profile.customer_id, integration_id=attempt.integration.id,
            integration_name=attempt.integration.name, outcome=decision.outcome,
            reason=decision.reason, external_customer_id=decision.external_customer_id,
            candidates=decision.candidates, exchange_id=exchange_id,
            error_kind=exchange.error.kind.value if exchange and exchange.error else None)

    def _mark_done(self, key: str, batch: Sequence[str]) -> None:
        """Record the batch's profiles as done; rows another worker wrote already are kept."""
        with self.ctx.db.session() as session:
            runs_store.mark_done(session, key, batch, self.ctx.now())

    def _finish(self, state: _Run, summary: BackfillSummary) -> None:
        """Clear the progress of a completed run (keep it to resume otherwise) and audit."""
        if state.chunk:
            self._finish_chunk(state, summary)
            return
        with self.ctx.db.session() as session:
            if not summary.cancelled:
                runs_store.clear_progress(session, state.key)
            record_audit(session, state.actor, "backfill.run", "backfill", state.key, None, {
                "integrations": list(summary.integrations), "done": summary.done,
                "total": summary.total, "resumed": summary.resumed,
                "cancelled": summary.cancelled, "counts": dict(summary.counts)})


    def _finish_chunk(self, state: _Run, summary: BackfillSummary) -> None:
        """A chunk's end: when no profile of the integration is left that is neither linked
        nor done, the run is complete: clear its progress and audit it (once: the chunk that
        clears the rows). Chunks finishing together serialise on a lock."""
        if summary.cancelled:
            return
        (integration,) = state.integrations
        with self.ctx.db.session() as session:
            runs_store.lock_chunk_ends(session, integration.id)
            if runs_store.left_count(session, integration.id, state.key):
                return
            if not runs_store.clear_progress(session, state.key):
                return
            record_audit(session, state.actor, "backfill.run", "backfill", state.key, None, {
                "integrations": [integration.name], "via": "jobs",
                "completed_by_chunk": summary.done})


def _listed(attempt: Attempt, result: AutolinkResult) -> BackfillAttempt:
    """The summary's entry for one attempt."""
    return BackfillAttempt(
        customer_id=result.customer_id, customer_name=attempt.profile.name,
        integration_name=result.integration_name, outcome=result.outcome,
        reason=result.reason, external_customer_id=result.external_customer_id,
        exchange_id=result.exchange_id, refresh_error=result.refresh_error)


def _would_conflict(session: Session, attempt: Attempt, decision: AutolinkDecision
                    ) -> AutolinkDecision:
    """A dry run's ``linked`` becomes ``conflict`` when the record is already linked."""
    if decision.external_customer_id is None:
        return decision
    holder = links_store.holder_of(session, attempt.integration.id,
                                   decision.external_customer_id)
    if holder is None:
        return decision
    return replace(decision, outcome=Outcome.CONFLICT, reason=(
        f"{attempt.integration.name} record {decision.external_customer_id} matched the "
        f"profile but is already linked to profile {holder.customer_id}; it would not be "
        "linked."))


def _refresh_plan(attempt: Attempt, result: AutolinkResult) -> RefreshPlan | None:
    """The DETAILED lookup to make after the attempt, if it made a link."""
    if result.link_id is None or result.external_customer_id is None:
        return None
    return _plan_for_new_link(attempt, result.external_customer_id)


def _plan_for_new_link(attempt: Attempt, external_customer_id: str) -> RefreshPlan:
    """The DETAILED lookup of a link the attempt just made, from the snapshots already read
    (the same request ``plan_refresh`` builds from the link, without reloading the profile)."""
    profile, integration = attempt.profile, attempt.integration
    request = detailed_request(
        profile.customer_id, external_customer_id, name=profile.name or None,
        emails=profile.normalized_emails, phones=profile.all_phones,
        custom_attributes=dict(profile.custom_attributes))
    return RefreshPlan(profile.customer_id, integration.id, integration.name,
                       external_customer_id, integration.target, request, integration.problem)
