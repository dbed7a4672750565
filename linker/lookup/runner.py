"""Run a coroutine to completion from synchronous code (scripts, Streamlit, the CLI)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

LOOP_FACTORY: Callable[[], asyncio.AbstractEventLoop] | None
try:
    from uvloop import new_event_loop as LOOP_FACTORY
except ImportError:  # pragma: no cover - uvloop is a dependency where it builds (not Windows)
    LOOP_FACTORY = None
"""uvloop's event loop when installed (its C loop halves asyncio's share of a lookup's CPU),
asyncio's own otherwise."""


def _run(make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with asyncio.Runner(loop_factory=LOOP_FACTORY) as runner:
        return runner.run(make_coroutine())


def run_sync(make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make_coroutine()`` builds and return its result.

    Runs it on a new event loop (uvloop's when installed) when the current thread has none
    running (Streamlit's script thread, the CLI); when one is running, on a fresh loop in a
    worker thread instead, blocking the caller until it is done.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run(make_coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="linker-lookup") as pool:
        return pool.submit(_run, make_coroutine).result()
