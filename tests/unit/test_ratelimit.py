"""The in-process rate caps: GCRA start times, slots shared by threads and event loops, the
gate that combines them (``linker.lookup.ratelimit``)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from linker.lookup.ratelimit import (
    LocalGate,
    Pacer,
    RateCap,
    SharedSlots,
    late_tolerance_s,
    wait_for_start,
)


class FakeClock:
    """A clock that moves only when a (fake) sleep says so."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 9))
        self.now += seconds


def test_pacer_spaces_starts_one_interval_apart() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)

    def waits(count: int) -> list[float]:
        return [round(pacer.reserve(0.2) - clock.now, 9) for _ in range(count)]

    assert waits(5) == [0.0, 0.2, 0.4, 0.6, 0.8]
    clock.now += 0.5  # half-way through the reserved starts
    assert waits(1) == [0.5]  # after the last one (at +0.8), +0.2
    clock.now += 60
    # Idle time earns no burst: after a long pause, starts are spaced again at once.
    assert waits(3) == [0.0, 0.2, 0.4]


def test_a_request_woken_too_late_gives_its_start_up() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    oversleep = [0.5]  # the first sleep ends 0.5 s late (a busy event loop)

    async def sleep(seconds: float) -> None:
        clock.now += seconds + (oversleep.pop() if oversleep else 0.0)

    async def reserve() -> tuple[float, float]:
        start = pacer.reserve(0.2)
        return start, start

    pacer.reserve(0.2)  # someone else starts now, so this request must wait
    given_up = asyncio.run(wait_for_start(reserve, 0.2, clock, sleep))
    assert given_up == 1  # woken 0.5 s late (> 0.1 s tolerance): it reserved again
    assert late_tolerance_s(0.2) == 0.1 and late_tolerance_s(0.001) == 0.01


def test_a_start_known_only_roughly_waits_for_its_latest_moment() -> None:
    """A reservation made elsewhere is known up to its round trip: never start before its
    latest moment; give it up when the round trip alone is longer than the tolerance."""
    clock = FakeClock()
    answers = [(100.0, 100.3), (100.5, 100.55)]  # a 0.3 s round trip, then a 0.05 s one

    async def reserve() -> tuple[float, float]:
        return answers.pop(0)

    assert asyncio.run(wait_for_start(reserve, 0.2, clock, clock.sleep)) == 1
    assert clock.slept == [0.3, 0.25]  # slept to 100.3 (then gave it up), then to 100.55
    assert clock.now == 100.55


def test_rate_cap_values() -> None:
    assert not RateCap(1).limited
    assert RateCap(1, max_concurrent=2).limited and RateCap(1, max_per_second=4).limited
    assert RateCap(1, max_per_second=4).interval_s == 0.25
    assert RateCap(1, max_concurrent=2).interval_s == 0.0


def test_shared_slots_hold_across_threads_and_event_loops() -> None:
    slots = SharedSlots()
    lock = threading.Lock()
    state = {"in": 0, "max": 0, "done": 0}

    async def one() -> None:
        await slots.acquire(2)
        try:
            with lock:
                state["in"] += 1
                state["max"] = max(state["max"], state["in"])
            await asyncio.sleep(0.005)
            with lock:
                state["in"] -= 1
                state["done"] += 1
        finally:
            slots.release(2)

    async def many() -> None:
        await asyncio.gather(*(one() for _ in range(6)))

    threads = [threading.Thread(target=asyncio.run, args=(many(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert state["done"] == 18
    assert state["max"] == 2  # never more, and the cap was reached
    assert slots.held == 0


def test_a_cancelled_waiter_takes_no_slot() -> None:
    async def scenario() -> int:
        slots = SharedSlots()
        await slots.acquire(1)
        waiter = asyncio.ensure_future(slots.acquire(1))
        await asyncio.sleep(0)
        assert not waiter.done()
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        slots.release(1)
        await asyncio.wait_for(slots.acquire(1), timeout=5)  # free at once
        slots.release(1)
        return slots.held

    assert asyncio.run(scenario()) == 0


def test_a_waiter_cancelled_after_its_grant_passes_the_slot_on() -> None:
    async def scenario() -> int:
        slots = SharedSlots()
        await slots.acquire(1)
        first = asyncio.ensure_future(slots.acquire(1))
        second = asyncio.ensure_future(slots.acquire(1))
        await asyncio.sleep(0)
        slots.release(1)  # grants ``first``...
        first.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, timeout=5)  # so the slot went on to ``second``
        slots.release(1)
        return slots.held

    assert asyncio.run(scenario()) == 0


def test_local_gate_waits_for_each_start_and_holds_slots() -> None:
    clock = FakeClock()
    gate = LocalGate(clock, clock.sleep)
    cap = RateCap(7, max_concurrent=2, max_per_second=10)

    async def scenario() -> list[int]:
        held: list[int] = []

        async def one() -> None:
            async with gate.admit(cap, 5.0):
                held.append(gate.slots(7).held)

        await asyncio.gather(*(one() for _ in range(5)))
        return held

    held = asyncio.run(scenario())
    assert max(held) <= 2 and len(held) == 5
    assert clock.slept == [0.1, 0.1, 0.1, 0.1]  # each start 0.1 s after the previous one
    assert gate.slots(7).held == 0


def test_local_gate_frees_the_slot_when_the_request_fails() -> None:
    gate = LocalGate()
    cap = RateCap(3, max_concurrent=1)

    async def scenario() -> None:
        with pytest.raises(RuntimeError):
            async with gate.admit(cap, 5.0):
                raise RuntimeError("adaptor call failed")
        async with gate.admit(cap, 5.0):
            pass

    asyncio.run(asyncio.wait_for(scenario(), timeout=5))
    assert gate.slots(3).held == 0


def test_budgets_are_per_integration() -> None:
    clock = FakeClock()
    gate = LocalGate(clock, clock.sleep)

    async def scenario() -> None:
        for key in (1, 2):
            async with gate.admit(RateCap(key, max_per_second=1), 5.0):
                pass

    asyncio.run(scenario())
    assert clock.slept == []  # integration 2 does not wait for integration 1's budget
