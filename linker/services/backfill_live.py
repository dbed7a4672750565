"""Backfills running in a process, visible to every other process of the database (issue 11).

A whole in-process run (``BackfillService.run``), the chunks of a run done in this process
and a shard (``BackfillJobs.run_inline``) register a ``backfill_runs`` row while they go
(``Registered``): what, who and since when, how far. The process renews the row's heartbeat
after every batch and every ``BEAT_S`` seconds in a daemon thread, and reads its cancel flag
each time: ``linker autolink cancel RUN`` (``BackfillJobs.cancel``) raises the flag, and the
run stops after the batches in flight, as on Ctrl-C. A row whose heartbeat is older than the
lease time-to-live belongs to a dead process: status ignores it, the next registration
deletes it.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING

from linker.services.leases import LEASE_TTL_S
from linker.store import backfill_runs as runs_store
from linker.store.database import Database
from linker.store.models import BackfillRun as RunRow

if TYPE_CHECKING:
    from linker.services.backfill import BackfillProgress

_LOG = logging.getLogger(__name__)
BEAT_S = 2.0
"""How often a running run renews its heartbeat and reads its cancel flag between batches."""


@dataclass(frozen=True)
class LiveRun:
    """A backfill running in some process of the database (read from ``backfill_runs``)."""

    run: str
    integrations: tuple[str, ...]
    part: str
    """``""`` a whole run, ``dry run``, ``chunks`` a run's chunks in one process, ``I/N``
    one shard."""
    holder: str
    started_at: datetime
    heartbeat_at: datetime
    done: int
    total: int
    cancel_requested: bool
    counts: dict[str, int] = field(default_factory=dict)
    """Outcome → how many so far (as of the last batch)."""

    @property
    def dry_run(self) -> bool:
        """True for a dry run (its ``linked`` counts mean *would link*)."""
        return self.part == "dry run"

    @property
    def what(self) -> str:
        """How the run goes, in words."""
        if self.part in ("chunks", "dry run"):
            return f"{self.part} in one process"
        return f"shard {self.part}" if self.part else "whole run in one process"

    def progress(self) -> BackfillProgress:
        """The run as the progress bars take it (outcome counts as of its last batch)."""
        from linker.services.backfill import BackfillProgress

        elapsed = max(0.0, time.time() - self.started_at.timestamp())
        return BackfillProgress(self.done, self.total, dict(self.counts), elapsed)


def new_run_id() -> str:
    """A run id (the same form as a run of chunk jobs)."""
    return secrets.token_hex(8)


def fresh_since(now: datetime) -> datetime:
    """Heartbeats before this are a dead process's."""
    return now - timedelta(seconds=LEASE_TTL_S)


def live_runs(db: Database, now: datetime) -> list[LiveRun]:
    """Every backfill running in a process of the database, oldest first."""
    with db.session(readonly=True) as session:
        return [_live(row) for row in runs_store.live_runs(session, fresh_since(now))]


def request_cancel(db: Database, run: str, now: datetime) -> bool:
    """Ask the live run to stop after its batch; False when no such run is going on."""
    with db.session() as session:
        return runs_store.request_cancel(session, run, now, fresh_since(now))


def _live(row: RunRow) -> LiveRun:
    return LiveRun(row.run, tuple(n for n in row.integrations.split(",") if n), row.part,
                   row.holder, row.started_at, row.heartbeat_at, row.done, row.total,
                   row.cancel_requested_at is not None,
                   {str(k): int(v) for k, v in (row.counts or {}).items()})


class Registered:
    """The ``backfill_runs`` row of a run for as long as it goes (a context manager).

    ``cancel`` (made when None) is set once the flag is raised; ``report(done)`` records the
    progress after a batch and reads the flag at once."""

    def __init__(self, db: Database, now: Callable[[], datetime], run: str,
                 integrations: Sequence[str], part: str, holder: str, total: int,
                 cancel: threading.Event | None) -> None:
        self.db, self.now, self.run = db, now, run
        self.cancel = cancel if cancel is not None else threading.Event()
        started = now()
        self._row = RunRow(run=run, integrations=",".join(integrations)[:400], part=part,
                           holder=holder[:200], started_at=started, heartbeat_at=started,
                           done=0, total=total)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_until_stopped, daemon=True,
                                        name="linker-backfill-run")

    def __enter__(self) -> Registered:
        with self.db.session() as session:
            runs_store.add_run(session, self._row, fresh_since(self.now()))
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=LEASE_TTL_S)
        with self.db.session() as session:
            runs_store.remove_run(session, self.run)

    def report(self, done: int | None = None, total: int | None = None,
               counts: Mapping[str, int] | None = None) -> None:
        """Renew the heartbeat (record ``done``, ``total``, the outcome ``counts``); set
        ``cancel`` when asked to stop."""
        try:
            with self.db.session() as session:
                stop = runs_store.beat(session, self.run, self.now(), done, total, counts)
        except Exception as exc:  # retried at the next beat; status may miss the run meanwhile
            _LOG.warning("could not renew backfill run %s: %s", self.run, exc)
            return
        if stop:
            self.cancel.set()

    def tracking(self, progress: Callable[[BackfillProgress], None] | None
                 ) -> Callable[[BackfillProgress], None]:
        """A progress callback that calls ``progress``, then reports the batch here (and so
        reads the cancel flag just before the next batch)."""
        def after_batch(p: BackfillProgress) -> None:
            if progress is not None:
                progress(p)
            self.report(p.done, p.total, p.counts)  # the last thing before the next batch

        return after_batch

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(BEAT_S):
            self.report()
