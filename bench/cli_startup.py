"""CLI start-up benchmark: how long `linker --help` and `linker lookup --help` take.

Run: ``.venv/bin/python bench/cli_startup.py [--runs N]``

Each command runs N times in a fresh interpreter (``python -m linker.cli.main ...``, so the
worktree's code is measured). Reported per command: the median and the fastest wall time, and
the median CPU time (user + system) of the child, which is the robust figure on a shared
machine; then the modules ``build_parser()`` imports, from ``python -X importtime``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import describe_machine  # bench/machine.py (the script's folder)

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (["--help"], ["lookup", "--help"], ["autolink", "backfill", "--help"])


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(argv: list[str], runs: int) -> tuple[float, float, float]:
    """(median wall s, fastest wall s, median CPU s) of ``linker ARGV`` over ``runs`` runs."""
    return _timed([sys.executable, "-m", "linker.cli.main", *argv], runs)


def measure_python(runs: int) -> tuple[float, float, float]:
    """The same figures for an interpreter that does nothing (the floor)."""
    return _timed([sys.executable, "-c", "pass"], runs)


def _timed(command: list[str], runs: int) -> tuple[float, float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    walls, cpus = [], []
    for _ in range(runs):
        cpu_before, start = _child_cpu(), time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        cpus.append(_child_cpu() - cpu_before)
    return statistics.median(walls), min(walls), statistics.median(cpus)


def imported_by_help() -> tuple[int, float, list[str]]:
    """(modules imported, their cumulative import time in s, the heavy ones) by the parser of
    ``linker --help``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parser_of_help = ("from linker.cli.main import build_parser; import inspect; "
                      "build_parser(['--help']) if inspect.signature(build_parser).parameters "
                      "else build_parser()")
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", parser_of_help], cwd=ROOT,
        env=env, capture_output=True, text=True, check=True).stderr
    rows = [line.split("|") for line in out.splitlines() if line.startswith("import time:")
            and "self [us]" not in line]
    top = [int(r[1]) for r in rows if not r[2].startswith("  ")]  # top-level imports only
    heavy = sorted({r[2].strip().split(".")[0] for r in rows}
                   & {"sqlalchemy", "alembic", "httpx", "streamlit", "phonenumbers", "pydantic",
                      "starlette", "uvicorn", "argon2", "cryptography"})
    return len(rows), sum(top) / 1e6, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(describe_machine())
    print("| command | median wall | fastest wall | median CPU |")
    print("|---|---|---|---|")
    floor = measure_python(args.runs)
    print(f"| `python -c pass` (the interpreter alone) | {floor[0] * 1000:.0f} ms | "
          f"{floor[1] * 1000:.0f} ms | {floor[2] * 1000:.0f} ms |")
    for argv in COMMANDS:
        median, fastest, cpu = measure(argv, args.runs)
        print(f"| `linker {' '.join(argv)}` | {median * 1000:.0f} ms | {fastest * 1000:.0f} ms "
              f"| {cpu * 1000:.0f} ms |")
    count, seconds, heavy = imported_by_help()
    print(f"the parser of `linker --help` imports {count} modules ({seconds * 1000:.0f} ms "
          f"cumulative); heavy: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
