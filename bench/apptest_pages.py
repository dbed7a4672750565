"""Page-render setup the console benches share: this checkout first on ``sys.path`` (import
this module before ``linker``), the app script, a signed-in AppTest, a timed script run and the
table of medians (``bench/demo_pages.py``, ``bench/pages_render.py``)."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's linker and dashboard, not an installed copy
APP = str(ROOT / "dashboard" / "app.py")


def signed_in(role: str) -> AppTest:
    """A fresh AppTest with the session keys of a signed-in ``role``."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["auth_username"] = f"bench-{role}"
    at.session_state["auth_role"] = role
    return at


def timed(action: Callable[[], AppTest]) -> tuple[float, AppTest]:
    """Seconds ``action`` took and its app; raises when the app raised."""
    start = time.perf_counter()
    at = action()
    elapsed = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"the page raised: {[e.value for e in at.exception]}")
    return elapsed, at


def print_medians(title: str, rounds: Sequence[dict[str, float]], width: int) -> None:
    """The median and the max of each step over ``rounds`` (seconds), in milliseconds."""
    print(f"\n{title:<{width}} {'median':>8} {'max':>8}")
    for step in rounds[0]:
        values = [r[step] for r in rounds]
        print(f"{step:<{width}} {statistics.median(values) * 1000:>6.0f}ms "
              f"{max(values) * 1000:>6.0f}ms")
