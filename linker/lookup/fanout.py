"""Fan-out: many lookups at once, each bounded only by its own target's timeout.

One slow, failing or hanging adaptor never delays the others beyond its own timeout: every
job runs as its own task over one shared connection pool, and every lookup carries its own
deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence

from linker.contract import LookupRequest
from linker.lookup.client import LookupClient
from linker.lookup.exchange import Exchange, Trigger
from linker.lookup.runner import run_sync
from linker.lookup.target import AdaptorTarget

Job = tuple[AdaptorTarget, LookupRequest]
OnResult = Callable[[int, Exchange], object]


async def iter_lookups(
    client: LookupClient,
    jobs: Sequence[Job],
    *,
    trigger: Trigger | None = None,
    max_concurrency: int | None = None,
) -> AsyncGenerator[tuple[int, Exchange], None]:
    """Yield ``(job index, exchange)`` as each lookup finishes, fastest first.

    ``max_concurrency`` bounds how many requests are in flight (default: all at once); waiting
    for a slot does not count against a lookup's timeout. Leaving the loop early cancels the
    lookups still running (close the iterator, e.g. with ``contextlib.aclosing``).
    """
    if not jobs:
        return
    slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None
    async with client.http_client() as http:

        async def run(index: int, target: AdaptorTarget, request: LookupRequest
                      ) -> tuple[int, Exchange]:
            if slots is None:
                return index, await client.lookup(target, request, trigger=trigger, client=http)
            async with slots:
                return index, await client.lookup(target, request, trigger=trigger, client=http)

        tasks = [asyncio.create_task(run(i, target, request))
                 for i, (target, request) in enumerate(jobs)]
        try:
            for finished in asyncio.as_completed(tasks):
                yield await finished
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def lookup_many(
    client: LookupClient,
    jobs: Sequence[Job],
    *,
    trigger: Trigger | None = None,
    on_result: OnResult | None = None,
    max_concurrency: int | None = None,
) -> list[Exchange]:
    """Run every ``(target, request)`` job concurrently; exchanges come back in job order.

    Never raises for adaptor problems: each failure is in its own Exchange. ``on_result`` is
    called with ``(index, exchange)`` as each one finishes, so a UI can show healthy systems
    before a slow one times out.
    """
    found: dict[int, Exchange] = {}
    async for index, exchange in iter_lookups(client, jobs, trigger=trigger,
                                              max_concurrency=max_concurrency):
        found[index] = exchange
        if on_result is not None:
            on_result(index, exchange)
    return [found[i] for i in range(len(jobs))]


def lookup_many_sync(
    client: LookupClient,
    jobs: Sequence[Job],
    *,
    trigger: Trigger | None = None,
    on_result: OnResult | None = None,
    max_concurrency: int | None = None,
) -> list[Exchange]:
    """``lookup_many`` from synchronous code (Streamlit's script thread, the CLI)."""
    return run_sync(lambda: lookup_many(client, jobs, trigger=trigger, on_result=on_result,
                                        max_concurrency=max_concurrency))
