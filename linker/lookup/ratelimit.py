"""Rate caps: at most N requests in flight to an adaptor, and at most R started per second.

``RateCap`` is one integration's caps; ``LookupClient.lookup`` passes through its
``RequestGate`` before it signs and sends a request to a capped target, and leaves it when the
exchange is over. Waiting at the gate does not count against the lookup's timeout.

Semantics (the same for every gate):

- *Concurrency*: at most ``max_concurrent`` requests hold a slot at once; a slot is held from
  before the request is signed until its exchange has ended (answer read, failed or timed out).
- *Rate*: requests start at least ``1 / max_per_second`` seconds apart (the generic cell rate
  algorithm, GCRA, with no burst: each request reserves the next start time, and waits for
  it). So any interval of one second holds at most ``max_per_second`` starts, and a backfill
  reaches exactly the cap's rate instead of bursting at the start of each second.
- A request takes its concurrency slot first and then its start time, so a request never waits
  for a slot after its start time was set (which would bunch starts together).
- A request that may start later than ``late_tolerance_s(interval)`` after its reserved start
  (a busy event loop, a process starved of CPU, a slow answer from the database) gives that
  start up and reserves a new one, so late wake-ups cannot bunch requests either: every start
  lies within the tolerance after a reserved start. Hence any one second holds at most
  ``R × (1 + tolerance) + 1`` starts (R + 1 for R up to 50 per second), and a slow process
  sends less, never more.

``LocalGate`` enforces the caps inside one process, for every thread and event loop of it
(SQLite deployments are one process; the console runs one event loop per script run, a
backfill another). asyncio's own Semaphore and aiolimiter's AsyncLimiter would fit a single
loop but bind to the first loop that waits on them, so this gate keeps its counters under a
``threading.Lock`` and wakes waiters of any loop with ``call_soon_threadsafe``. Several
processes on one PostgreSQL use ``linker.store.ratelimit.DatabaseGate`` instead.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RateCap:
    """An integration's caps; ``key`` (its id) names the budget shared by its requests."""

    key: int
    max_concurrent: int | None = None
    max_per_second: float | None = None

    @property
    def limited(self) -> bool:
        """True when at least one cap is set."""
        return bool(self.max_concurrent) or bool(self.max_per_second)

    @property
    def interval_s(self) -> float:
        """Seconds between two request starts (0 without a rate cap)."""
        return 1.0 / self.max_per_second if self.max_per_second else 0.0


MIN_LATE_TOLERANCE_S = 0.01
"""The least lateness allowed before a start is given up (an event loop's normal delay)."""


def late_tolerance_s(interval_s: float) -> float:
    """How late after its reserved start a request may still start: half an interval, at
    least 10 ms."""
    return max(interval_s / 2, MIN_LATE_TOLERANCE_S)


Reservation = tuple[float, float]
"""A reserved start on the waiter's clock, as ``(earliest, latest)``: when the reservation
was made elsewhere (the database), the moment is known only up to the round trip."""


async def wait_for_start(reserve: Callable[[], Awaitable[Reservation]], interval_s: float,
                         clock: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> int:
    """Reserve a start, sleep until its latest moment (never early), and reserve again while
    the start would be later than the tolerance after its earliest; returns how many starts
    were given up."""
    given_up = 0
    while True:
        earliest, latest = await reserve()
        delay = latest - clock()
        if delay > 0:
            await sleep(delay)
        if clock() - earliest <= late_tolerance_s(interval_s):
            return given_up
        given_up += 1


class RequestGate(Protocol):
    """Admits requests to capped adaptors; see the module docstring for the semantics."""

    def admit(self, cap: RateCap, hold_s: float) -> AbstractAsyncContextManager[None]:
        """Wait until a request may start, and hold its place while the block runs.
        ``hold_s`` is the longest the request itself can take (its timeout)."""
        ...


class _Waiter:
    """A task waiting for a slot: its loop, the future to wake, and whether it was granted."""

    __slots__ = ("future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.granted = False


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SharedSlots:
    """A counting semaphore usable from any thread and any event loop, first come first served.

    The limit is given on each call, so a changed cap takes effect for the next acquire.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def held(self) -> int:
        """Slots held right now."""
        return self._held

    async def acquire(self, limit: int) -> None:
        """Take a slot, waiting while ``limit`` are held. Cancellation leaves no slot taken."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._held < limit and not self._waiters:
                self._held += 1
                return
            waiter = _Waiter(loop)
            self._waiters.append(waiter)
        try:
            await waiter.future
        except BaseException:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
            if granted:  # woken and cancelled at once: pass the slot on
                self.release(limit)
            raise

    def release(self, limit: int) -> None:
        """Give a slot back and hand free slots to the next waiters."""
        with self._lock:
            self._held -= 1
            while self._waiters and self._held < limit:
                waiter = self._waiters.popleft()
                try:
                    waiter.loop.call_soon_threadsafe(_wake, waiter.future)
                except RuntimeError:  # its loop is closed: nobody is waiting any more
                    continue
                waiter.granted = True
                self._held += 1


class Pacer:
    """GCRA start times for one budget: ``reserve`` returns the next start on its clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next_at = float("-inf")

    def reserve(self, interval_s: float) -> float:
        """Reserve the next start, ``interval_s`` after the previous one (or now)."""
        with self._lock:
            start = max(self._next_at, self._clock())
            self._next_at = start + interval_s
            return start


class LocalGate:
    """The caps within this process: ``SharedSlots`` and a ``Pacer`` per integration.
    ``clock`` and ``sleep`` are injectable so tests can check the spacing exactly."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[int, SharedSlots] = {}
        self._pacers: dict[int, Pacer] = {}

    def slots(self, key: int) -> SharedSlots:
        """The slots of one budget (created on first use)."""
        with self._lock:
            return self._slots.setdefault(key, SharedSlots())

    def pacer(self, key: int) -> Pacer:
        """The start times of one budget (created on first use)."""
        with self._lock:
            return self._pacers.setdefault(key, Pacer(self._clock))

    @asynccontextmanager
    async def admit(self, cap: RateCap, hold_s: float) -> AsyncIterator[None]:
        """Wait for a slot, then for the next start time; hold the slot while the block runs."""
        slots = self.slots(cap.key) if cap.max_concurrent else None
        if slots is not None and cap.max_concurrent:
            await slots.acquire(cap.max_concurrent)
        try:
            if cap.max_per_second:
                pacer = self.pacer(cap.key)

                async def reserve() -> Reservation:
                    start = pacer.reserve(cap.interval_s)
                    return start, start

                await wait_for_start(reserve, cap.interval_s, self._clock, self._sleep)
            yield
        finally:
            if slots is not None and cap.max_concurrent:
                slots.release(cap.max_concurrent)
