"""Background jobs on Procrastinate (PostgreSQL): the tasks ``linker worker`` runs.

- ``linker.backfill_chunk`` (queue ``backfill``): one chunk of a backfill run
  (``BackfillJobs.run_chunk_job``). Cancelling the run aborts it after its batches in flight
  (status ``aborted``). Any error, a worker shutdown, or a lease still held by someone else
  (``BackfillBusy``) retries it later, with growing waits; the retry resumes from the chunk's
  progress rows, so nothing is attempted twice that was recorded done.
- ``linker.retry_stalled_jobs`` (queue ``maintenance``, every 5 s): jobs left ``doing`` by a
  worker whose heartbeat stopped (SIGKILL, lost machine) go back to ``todo``.
- ``linker.prune`` (queue ``maintenance``, hourly): exchange retention (``LINKER_RETENTION_DAYS``)
  and finished jobs: maintenance jobs after an hour, backfill chunk and probe jobs after 30 days.
- ``linker.schedule_probes`` (queue ``maintenance``, every minute): one ``linker.probe`` job
  (queue ``probes``) per integration whose conformance probe is due, with the lock and
  queueing lock ``probe:<id>``, so one integration is never probed twice at once nor queued
  twice; the job claims the probe (``ProbeService.run_probe``) and stores its report card.

Importing this module imports procrastinate; the CLI imports it only in ``linker worker``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from procrastinate import App, JobContext, RetryStrategy
from procrastinate.exceptions import AlreadyEnqueued, JobAborted
from procrastinate.jobs import Job
from procrastinate.retry import RetryDecision

from linker.services.backfill_jobs import BACKFILL_QUEUE, CHUNK_TASK, BackfillJobs, Chunk
from linker.services.context import ServiceContext
from linker.services.errors import ServiceError
from linker.services.leases import BackfillBusy
from linker.services.probes import PROBE_ACTOR, ProbeService
from linker.store import jobqueue
from linker.store.retention import prune_exchanges, retention_age

_LOG = logging.getLogger(__name__)
MAINTENANCE_QUEUE = "maintenance"
PROBE_QUEUE = "probes"
PROBE_TASK = "linker.probe"
QUEUES = (BACKFILL_QUEUE, MAINTENANCE_QUEUE, PROBE_QUEUE)


class ChunkRetry(RetryStrategy):
    """Retry a failed chunk, except for service errors a retry cannot fix (the integration
    was switched off or removed, the starter lost the permission); a lease still held by
    someone else (``BackfillBusy``) is retried."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        """None (fail for good) for a lasting service error; else the usual backoff."""
        if isinstance(exception, ServiceError) and not isinstance(exception, BackfillBusy):
            return None
        return super().get_retry_decision(exception=exception, job=job)


CHUNK_RETRY = ChunkRetry(max_attempts=8, wait=5, linear_wait=10)
"""Up to 8 attempts, 5 s, 15 s, 25 s ... apart: long enough for a dead holder's lease to
expire (60 s) on another machine."""
STALLED_CRON = "* * * * * */5"
PRUNE_CRON = "7 * * * *"
PROBES_CRON = "* * * * *"


class LeaseLost(RuntimeError):
    """The chunk's lease was taken over (it had stalled); retried, the retry finds it done."""


class AbortFlag(threading.Event):
    """The ``cancel`` event a chunk checks between batches, also set when the job is asked
    to stop (run cancelled, or the worker shutting down)."""

    def __init__(self, context: JobContext) -> None:
        super().__init__()
        self._context = context

    def is_set(self) -> bool:
        """True once set or once the job should abort."""
        if not super().is_set() and self._context.should_abort():
            self.set()
        return super().is_set()


def build_app(ctx: ServiceContext, *, stalled_after_s: float, pool_size: int = 4) -> App:
    """Procrastinate's app on ``ctx``'s PostgreSQL database with Linker's tasks registered;
    the tasks run against ``ctx`` (one ServiceContext per worker process)."""
    app = App(connector=jobqueue.connector(ctx.db.url, max_size=pool_size))
    jobs = BackfillJobs(ctx)

    @app.task(name=CHUNK_TASK, queue=BACKFILL_QUEUE, pass_context=True, retry=CHUNK_RETRY)
    def backfill_chunk(context: JobContext, /, **args: Any) -> dict[str, Any]:
        chunk = Chunk.from_args(args)
        flag = AbortFlag(context)
        summary = jobs.run_chunk_job(chunk, cancel=flag)
        if summary.lease_lost:
            raise LeaseLost(f"chunk {chunk.index}/{chunk.count} of run {chunk.run} lost its "
                            "lease to another worker; retrying")
        if summary.cancelled:
            raise JobAborted(f"chunk {chunk.index}/{chunk.count} of run {chunk.run} stopped "
                             f"after {summary.done} of {summary.total} profiles")
        return {"done": summary.done, "counts": summary.counts}

    @app.periodic(cron=STALLED_CRON)
    @app.task(name="linker.retry_stalled_jobs", queue=MAINTENANCE_QUEUE,
              queueing_lock="linker.retry_stalled_jobs", pass_context=True)
    async def retry_stalled_jobs(context: JobContext, timestamp: int) -> int:
        stalled = await app.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=stalled_after_s)
        retried = 0
        for job in stalled:
            if job.task_name == "linker.retry_stalled_jobs":
                continue
            try:
                await app.job_manager.retry_job(job)
                retried += 1
            except Exception as exc:  # another worker retried it first
                _LOG.info("stalled job %s not retried here: %s", job.id, exc)
        if retried:
            _LOG.warning("put %d stalled job(s) back in the queue", retried)
        return retried

    @app.periodic(cron=PRUNE_CRON)
    @app.task(name="linker.prune", queue=MAINTENANCE_QUEUE, queueing_lock="linker.prune",
              pass_context=True)
    async def prune(context: JobContext, timestamp: int) -> int:
        await app.job_manager.delete_old_jobs(nb_hours=1, queue=MAINTENANCE_QUEUE)
        await app.job_manager.delete_old_jobs(nb_hours=24 * 30, queue=BACKFILL_QUEUE)
        await app.job_manager.delete_old_jobs(nb_hours=24 * 30, queue=PROBE_QUEUE)
        return await asyncio.to_thread(prune_old_exchanges, ctx)

    probes = ProbeService(ctx)

    @app.task(name=PROBE_TASK, queue=PROBE_QUEUE, pass_context=True)
    def probe(context: JobContext, integration_id: int) -> dict[str, Any]:
        result = probes.run_probe(PROBE_ACTOR, integration_id)
        if result is None:
            return {"ran": False}
        return {"ran": True, "run": result.card.id if result.card else None,
                "degraded": result.verdict.degraded if result.verdict else None,
                "error": result.error}

    @app.periodic(cron=PROBES_CRON)
    @app.task(name="linker.schedule_probes", queue=MAINTENANCE_QUEUE,
              queueing_lock="linker.schedule_probes", pass_context=True)
    async def schedule_probes(context: JobContext, timestamp: int) -> int:
        deferred = 0
        for integration_id in await asyncio.to_thread(probes.due, PROBE_ACTOR):
            lock = f"probe:{integration_id}"
            try:
                await app.configure_task(PROBE_TASK, queue=PROBE_QUEUE, lock=lock,
                                         queueing_lock=lock).defer_async(
                    integration_id=integration_id)
                deferred += 1
            except AlreadyEnqueued:
                _LOG.info("probe of integration %s is already queued", integration_id)
        return deferred

    return app


def prune_old_exchanges(ctx: ServiceContext) -> int:
    """Delete exchanges older than the retention age (the ``linker.prune`` job's work)."""
    with ctx.db.session() as session:
        return prune_exchanges(session, retention_age(ctx.settings), datetime.now(UTC))
