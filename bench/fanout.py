"""Fan-out benchmark: many adaptors at once cost about as much as the slowest one.

Run: ``.venv/bin/python bench/fanout.py [--rounds N]``

1. Eight reference adaptors over loopback with added latencies of 50..400 ms. Each round runs
   the eight lookups concurrently (``lookup_many``) and then one after another (the sequential
   baseline). Reported: wall time / slowest single exchange (target <= 1.10), and the
   sequential wall time for comparison.
2. The same, with one more integration that hangs (timeout 2 s). Reported: total wall time
   against that timeout + 0.25 s; every healthy exchange still comes back ok.

Medians over the rounds are printed last, in a form ready for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack

from machine import describe_machine  # bench/machine.py (the script's folder)

from linker.adaptor.app import create_app
from linker.adaptor.datasets import load_dataset
from linker.adaptor.faults import parse_fault
from linker.adaptor.server import BackgroundServer
from linker.contract import LookupRequest, search_request
from linker.demo import allow_demo_adaptors
from linker.lookup import AdaptorTarget, ErrorKind, Exchange, LookupClient, lookup_many

LATENCIES_MS = (50, 100, 150, 200, 250, 300, 350, 400)
HANG_TIMEOUT_S = 2.0
HANG_ALLOWANCE_S = 0.25
TARGET_RATIO = 1.10
SIGNING_KEY = "bench-signing-key-0001"


def _request() -> LookupRequest:
    record = load_dataset("shop").records[0]
    return search_request("bench-customer", {"email": record.emails[0]})


async def _concurrent(client: LookupClient, jobs: Sequence[tuple[AdaptorTarget, LookupRequest]]
                      ) -> tuple[float, list[Exchange]]:
    start = time.perf_counter()
    exchanges = await lookup_many(client, jobs)
    return time.perf_counter() - start, exchanges


async def _sequential(client: LookupClient,
                      jobs: Sequence[tuple[AdaptorTarget, LookupRequest]]) -> float:
    start = time.perf_counter()
    for target, request in jobs:
        await client.lookup(target, request)
    return time.perf_counter() - start


def _check(exchanges: Sequence[Exchange], hanging: str | None = None) -> None:
    for exchange in exchanges:
        if exchange.integration == hanging:
            assert exchange.error is not None and exchange.error.kind is ErrorKind.TIMEOUT, (
                f"{exchange.integration}: expected a timeout, got {exchange.error}")
        else:
            assert exchange.ok, f"{exchange.integration}: {exchange.error}"


async def _bench(urls: Sequence[str], hang_url: str, rounds: int) -> dict[str, list[float]]:
    client = LookupClient()
    request = _request()
    healthy = [(AdaptorTarget(url, name=f"latency-{ms}", signing_key=SIGNING_KEY), request)
               for url, ms in zip(urls, LATENCIES_MS, strict=True)]
    hang = (AdaptorTarget(hang_url, name="hang", signing_key=SIGNING_KEY,
                          timeout_s=HANG_TIMEOUT_S), request)
    await _concurrent(client, healthy)  # warm-up: imports, first connections
    figures: dict[str, list[float]] = {"wall": [], "slowest": [], "ratio": [],
                                       "sequential": [], "hang_total": []}
    for number in range(1, rounds + 1):
        wall, exchanges = await _concurrent(client, healthy)
        _check(exchanges)
        slowest = max(e.elapsed_ms for e in exchanges) / 1000.0
        sequential = await _sequential(client, healthy)
        hang_total, hang_exchanges = await _concurrent(client, [*healthy, hang])
        _check(hang_exchanges, hanging="hang")
        for key, value in (("wall", wall), ("slowest", slowest), ("ratio", wall / slowest),
                           ("sequential", sequential), ("hang_total", hang_total)):
            figures[key].append(value)
        print(f"round {number}: concurrent {wall * 1000:7.1f} ms, slowest single "
              f"{slowest * 1000:7.1f} ms, ratio {wall / slowest:.3f}; sequential "
              f"{sequential * 1000:7.1f} ms; with a hanging integration {hang_total:.3f} s")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print per-round and median figures; 1 if a target is missed."""
    allow_demo_adaptors()  # the benchmark's adaptors listen on loopback
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        urls = []
        for ms in LATENCIES_MS:
            app = create_app("shop", signing_key=SIGNING_KEY,
                             faults=(parse_fault(f"latency:{ms}"),))
            urls.append(stack.enter_context(BackgroundServer(app)).url)
        hang_app = create_app("shop", signing_key=SIGNING_KEY, faults=(parse_fault("hang"),))
        hang_url = stack.enter_context(BackgroundServer(hang_app)).url
        figures = asyncio.run(_bench(urls, hang_url, args.rounds))
    median = {key: statistics.median(values) for key, values in figures.items()}
    hang_limit = HANG_TIMEOUT_S + HANG_ALLOWANCE_S
    print()
    print(f"{describe_machine()}; rounds: {args.rounds}")
    print(f"median concurrent wall time of 8 adaptors (50..400 ms): {median['wall'] * 1000:.1f} ms")
    print(f"median slowest single exchange: {median['slowest'] * 1000:.1f} ms")
    print(f"median wall / slowest: {median['ratio']:.3f} (target <= {TARGET_RATIO:.2f})")
    print(f"median sequential baseline: {median['sequential'] * 1000:.1f} ms "
          f"({median['sequential'] / median['wall']:.1f}x the concurrent time)")
    print(f"median total with one hanging integration (timeout {HANG_TIMEOUT_S:.1f} s): "
          f"{median['hang_total']:.3f} s (target <= {hang_limit:.2f} s)")
    ok = median["ratio"] <= TARGET_RATIO and median["hang_total"] <= hang_limit
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
