"""What the benchmarks print about the machine they ran on.

Importing it (before ``linker``) also puts this checkout first on ``sys.path``: a script's own
folder is first there, not the checkout, so a bench run from another worktree would otherwise
measure the installed (editable) copy's ``linker``.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe_machine() -> str:
    """One line: date, CPU count and model, Python and OS, for docs/benchmarks.md."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"date: {datetime.now(UTC):%Y-%m-%d}; nproc: {cpus}; CPU: {cpu_model()}; "
            f"Python {platform.python_version()}; {platform.system()} {platform.release()}")
