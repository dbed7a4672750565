"""Rate caps honoured by every process on one PostgreSQL database (backfills, workers, consoles).

``DatabaseGate`` implements ``linker.lookup.ratelimit.RequestGate`` with the semantics written
there, keeping the shared state in two tables:

- ``adaptor_slots``: one row per concurrency slot of an integration. A request takes a free
  slot (``holder`` set, ``expires_at`` = now + its timeout + a grace period) in one statement
  (``FOR UPDATE SKIP LOCKED``, so takers never block each other) and frees it after its
  exchange. When every slot is held it polls, backing off from 5 to 50 ms. A process killed
  while holding a slot cannot free it; the slot is free again once ``expires_at`` passes.
- ``adaptor_pacing``: one row per integration holding the earliest start of the next request.
  One upsert reserves the next start (GCRA: ``next_at = max(next_at, now) + 1/R``) and returns
  how long to wait for it; no polling. The wait becomes a moment of this machine's monotonic
  clock known up to the statement's round trip (``[sent + wait, answered + wait]``); the
  request sleeps until the latest and gives the start up when it would begin more than the
  tolerance after the earliest (``linker.lookup.ratelimit.wait_for_start``), so neither a slow
  answer nor the hop back to the event loop can bunch starts.

Times are the database server's (``clock_timestamp()``), so processes on several machines
share one clock. Within the process a ``LocalGate`` admits at most ``max_concurrent`` requests
to the database step, so no more tasks poll than could hold a slot.

Why not a library: the well-kept Python rate limiters either have no PostgreSQL backend
(``limits``: Redis, Memcached, MongoDB), bind to one event loop (``aiolimiter``), or, like
pyrate-limiter's ``PostgresBucket``, create their own tables at run time (outside the migrations),
block the event loop on a synchronous pool, refuse under contention instead of waiting, and
offer no cap on requests in flight. The two statements here are the whole mechanism.

The database calls run on a small thread pool of the gate's own so that a backfill's event
loop never blocks on them. On SQLite (one process) ``LookupClient`` keeps its ``LocalGate``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text

from linker.lookup.ratelimit import LocalGate, RateCap, Reservation, wait_for_start
from linker.store.database import Database

GRACE_S = 30.0
"""How long past its timeout a slot of a vanished holder stays taken."""
POLL_FIRST_S = 0.005
POLL_MAX_S = 0.05
DB_THREADS = 4

_TAKE_SLOT = text("""
WITH free AS (
    SELECT slot FROM adaptor_slots
    WHERE integration_id = :key AND slot < :slots
      AND (expires_at IS NULL OR expires_at < clock_timestamp())
    ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED
), taken AS (
    UPDATE adaptor_slots AS s
    SET holder = :holder, expires_at = clock_timestamp() + make_interval(secs => :hold_s)
    FROM free WHERE s.integration_id = :key AND s.slot = free.slot
    RETURNING s.slot
)
SELECT (SELECT slot FROM taken) AS slot,
       (SELECT count(*) FROM adaptor_slots
        WHERE integration_id = :key AND slot < :slots) AS provisioned
""")
_ADD_SLOTS = text("""
INSERT INTO adaptor_slots (integration_id, slot, holder)
SELECT :key, n, '' FROM generate_series(0, :slots - 1) AS n
WHERE EXISTS (SELECT 1 FROM integrations WHERE id = :key)
ON CONFLICT (integration_id, slot) DO NOTHING
""")
_INTEGRATION_EXISTS = text("SELECT count(*) FROM integrations WHERE id = :key")
_EXTEND_SLOT = text("""
UPDATE adaptor_slots SET expires_at = clock_timestamp() + make_interval(secs => :hold_s)
WHERE integration_id = :key AND slot = :slot AND holder = :holder
""")
_FREE_SLOT = text("""
UPDATE adaptor_slots SET holder = '', expires_at = NULL
WHERE integration_id = :key AND slot = :slot AND holder = :holder
""")
_RESERVE_START = text("""
INSERT INTO adaptor_pacing AS p (integration_id, next_at)
SELECT :key, clock_timestamp() + make_interval(secs => :interval_s)
WHERE EXISTS (SELECT 1 FROM integrations WHERE id = :key)
ON CONFLICT (integration_id) DO UPDATE
SET next_at = GREATEST(p.next_at, clock_timestamp()) + make_interval(secs => :interval_s)
RETURNING CAST(EXTRACT(EPOCH FROM (p.next_at - clock_timestamp())) AS double precision)
          - :interval_s AS wait_s
""")


class DatabaseGate:
    """Rate caps across every process using one PostgreSQL database (see the module docstring).

    Raises whatever the database raises when it cannot be reached; an integration deleted
    meanwhile is admitted without a cap.
    """

    def __init__(self, db: Database) -> None:
        if db.is_sqlite:
            raise ValueError("DatabaseGate needs PostgreSQL; SQLite uses LocalGate")
        self.db = db
        self._local = LocalGate()
        self._pool = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="linker-ratecap")
        self._tag = f"{os.getpid()}:"

    def close(self) -> None:
        """Stop the gate's threads (requests still waiting raise)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    @asynccontextmanager
    async def admit(self, cap: RateCap, hold_s: float) -> AsyncIterator[None]:
        """Take a slot (all processes together), wait for the next start, hold the slot."""
        local = RateCap(cap.key, cap.max_concurrent)
        async with self._local.admit(local, hold_s):
            slot: tuple[int, str] | None = None
            if cap.max_concurrent:
                slot = await self._take_slot(cap.key, cap.max_concurrent, hold_s + GRACE_S)
            try:
                if cap.max_per_second:

                    async def reserve() -> Reservation:
                        moment: Reservation = await self._in_db(self._reserve_moment, cap.key,
                                                                cap.interval_s)
                        wait = moment[1] - time.monotonic()
                        if slot is not None and wait > GRACE_S / 2:  # keep the slot meanwhile
                            await self._in_db(self._extend, cap.key, slot,
                                              wait + hold_s + GRACE_S)
                        return moment

                    await wait_for_start(reserve, cap.interval_s)
                yield
            finally:
                if slot is not None:
                    await self._in_db(self._free, cap.key, slot)

    # -- steps (gate threads) ----------------------------------------------------------------

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on a gate thread, run to its end even if the caller is cancelled."""
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        return await asyncio.shield(future)

    async def _take_slot(self, key: int, slots: int, hold_s: float) -> tuple[int, str] | None:
        """A held slot ``(number, holder)``; None when the integration no longer exists."""
        delay = POLL_FIRST_S
        while True:
            holder = self._tag + uuid.uuid4().hex
            future = asyncio.get_running_loop().run_in_executor(
                self._pool, self.try_take_slot, key, slots, hold_s, holder)
            try:
                taken = await asyncio.shield(future)
            except asyncio.CancelledError:
                future.add_done_callback(functools.partial(self._free_if_taken, key, holder))
                raise
            if taken != -1:
                return None if taken is None else (taken, holder)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 1.5, POLL_MAX_S)

    def _free_if_taken(self, key: int, holder: str, done: asyncio.Future[Any]) -> None:
        """A slot taken for a caller cancelled meanwhile is freed at once."""
        if not done.cancelled() and done.exception() is None and done.result() not in (None, -1):
            self._pool.submit(self._free, key, (done.result(), holder))

    def try_take_slot(self, key: int, slots: int, hold_s: float, holder: str) -> int | None:
        """Take a free slot: its number, -1 when all are held, None when the integration is
        gone. Adds the slot rows first when there are fewer than ``slots``."""
        params = {"key": key, "slots": slots, "hold_s": hold_s, "holder": holder}
        with self.db.engine.begin() as connection:
            row = connection.execute(_TAKE_SLOT, params).one()
        if row.slot is not None:
            return int(row.slot)
        if row.provisioned >= slots:
            return -1
        with self.db.engine.begin() as connection:
            connection.execute(_ADD_SLOTS, params)
            if not connection.execute(_INTEGRATION_EXISTS, params).scalar():
                return None
        return self.try_take_slot(key, slots, hold_s, holder)

    def _reserve_moment(self, key: int, interval_s: float) -> Reservation:
        """``reserve_start`` as ``(earliest, latest)`` moments of ``time.monotonic``."""
        sent = time.monotonic()
        wait = self.reserve_start(key, interval_s)
        return sent + wait, time.monotonic() + wait

    def reserve_start(self, key: int, interval_s: float) -> float:
        """Reserve the next start of ``key``'s requests; seconds to wait for it (>= 0)."""
        with self.db.engine.begin() as connection:
            wait = connection.execute(_RESERVE_START,
                                      {"key": key, "interval_s": interval_s}).scalar()
        return max(float(wait), 0.0) if wait is not None else 0.0

    def _extend(self, key: int, slot: tuple[int, str], hold_s: float) -> None:
        with self.db.engine.begin() as connection:
            connection.execute(_EXTEND_SLOT, {"key": key, "slot": slot[0], "holder": slot[1],
                                              "hold_s": hold_s})

    def _free(self, key: int, slot: tuple[int, str]) -> None:
        with self.db.engine.begin() as connection:
            connection.execute(_FREE_SLOT, {"key": key, "slot": slot[0], "holder": slot[1]})
