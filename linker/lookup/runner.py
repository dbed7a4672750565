"""Run a coroutine to completion from synchronous code (scripts, Streamlit, the CLI)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine ``make_coroutine()`` builds and return its result.

    Uses ``asyncio.run`` when the current thread has no running event loop (Streamlit's script
    thread, the CLI); when one is running, runs it on a fresh loop in a worker thread instead,
    blocking the caller until it is done.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="linker-lookup") as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()
