"""Fan-out against reference adaptors: one hanging and one refused target never cost the others.

No timing thresholds here (they are flaky on shared machines); bench/fanout.py measures time.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import ExitStack, aclosing

import pytest

from linker.adaptor.app import create_app
from linker.adaptor.datasets import load_dataset
from linker.adaptor.faults import parse_fault
from linker.adaptor.server import BackgroundServer
from linker.contract import search_request
from linker.lookup import (
    AdaptorTarget,
    ErrorKind,
    Exchange,
    LookupClient,
    Trigger,
    iter_lookups,
    lookup_many,
    lookup_many_sync,
)

SIGNING_KEY = "fanout-signing-key-0001"
EMAIL = load_dataset("shop").records[0].emails[0]
REQUEST = search_request("cust-1", {"email": EMAIL})


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def targets() -> Iterator[list[AdaptorTarget]]:
    """shop, loyalty, travel, a slow shop, a hanging adaptor (1 s timeout) and a refused port."""
    with ExitStack() as stack:
        def serve(dataset: str, *faults: str) -> str:
            app = create_app(dataset, signing_key=SIGNING_KEY,
                             faults=tuple(parse_fault(f) for f in faults))
            return stack.enter_context(BackgroundServer(app)).url

        yield [
            AdaptorTarget(serve("shop"), name="shop", signing_key=SIGNING_KEY),
            AdaptorTarget(serve("loyalty"), name="loyalty", signing_key=SIGNING_KEY),
            AdaptorTarget(serve("shop", "hang"), name="hang", signing_key=SIGNING_KEY,
                          timeout_s=1.0),
            AdaptorTarget(_refused_url(), name="refused"),
            AdaptorTarget(serve("travel"), name="travel", signing_key=SIGNING_KEY),
            AdaptorTarget(serve("shop", "latency:100"), name="slow", signing_key=SIGNING_KEY),
        ]


def _check(exchanges: list[Exchange], targets: list[AdaptorTarget]) -> None:
    assert [e.integration for e in exchanges] == [t.name for t in targets]
    kinds = {e.integration: e.error.kind if e.error else None for e in exchanges}
    assert kinds == {"shop": None, "loyalty": None, "travel": None, "slow": None,
                     "hang": ErrorKind.TIMEOUT, "refused": ErrorKind.UNREACHABLE}
    by_name = {e.integration: e for e in exchanges}
    assert by_name["shop"].results
    assert by_name["hang"].error is not None
    assert "within 1.0 s" in by_name["hang"].error.message
    assert by_name["refused"].response is None


def test_lookup_many_returns_every_exchange(targets: list[AdaptorTarget]) -> None:
    jobs = [(t, REQUEST) for t in targets]
    exchanges = asyncio.run(lookup_many(LookupClient(), jobs, trigger=Trigger.SEARCH))
    _check(exchanges, targets)
    assert {e.trigger for e in exchanges} == {Trigger.SEARCH}


def test_lookup_many_sync_and_on_result(targets: list[AdaptorTarget]) -> None:
    finished: list[str] = []
    exchanges = lookup_many_sync(LookupClient(), [(t, REQUEST) for t in targets],
                                 on_result=lambda _, e: finished.append(e.integration))
    _check(exchanges, targets)
    assert sorted(finished) == sorted(t.name for t in targets)


def test_lookup_many_with_bounded_concurrency(targets: list[AdaptorTarget]) -> None:
    exchanges = lookup_many_sync(LookupClient(), [(t, REQUEST) for t in targets],
                                 max_concurrency=2)
    _check(exchanges, targets)


def test_iter_lookups_stops_early_and_cancels_the_rest(targets: list[AdaptorTarget]) -> None:
    async def first_two() -> list[tuple[int, Exchange]]:
        got: list[tuple[int, Exchange]] = []
        jobs = [(t, REQUEST) for t in targets]
        async with aclosing(iter_lookups(LookupClient(), jobs)) as results:
            async for item in results:
                got.append(item)
                if len(got) == 2:
                    break
        return got

    got = asyncio.run(first_two())
    assert len(got) == 2
    assert all(targets[i].name != "hang" for i, _ in got)
