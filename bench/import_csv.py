"""CSV import benchmark: ``linker customers import`` of a generated file, wall time and peak RSS.

Run: ``.venv/bin/python bench/import_csv.py [--rows 100000] [--rounds 1] [--database-url URL]``

Each round writes a ``name,email,phone,phone_type`` file of ``--rows`` distinct people (one bad
email every 1,000 rows, so the rejected-row path is exercised too) into a fresh temporary
LINKER_HOME, runs ``linker customers import FILE`` in a child process and reads the
child's wall time, CPU time and peak resident set size (``ru_maxrss`` of the waited child). With
``--database-url`` (PostgreSQL) the database's public schema is dropped first.
The child's own progress lines go to its stderr and are not shown.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe_machine  # bench/machine.py (the script's folder)

ROOT = Path(__file__).resolve().parents[1]
LINKER = [sys.executable, "-c", "import sys; from linker.cli.main import main; "
          "sys.exit(main(sys.argv[1:]))"]
"""The ``linker`` command of this checkout (PYTHONPATH points at it)."""


def write_file(path: Path, rows: int) -> None:
    """A CSV of ``rows`` distinct people, every 1,000th with a bad email."""
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "email", "phone", "phone_type"])
        for i in range(rows):
            email = f"person{i}@example" if i % 1000 == 999 else f"person{i}@example.com"
            writer.writerow([f"Person {i}", email, f"+1415{2000000 + i:07d}", "MOBILE"])


def reset_postgres(url: str) -> None:
    """Drop and recreate the public schema of ``url``."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def one_round(rows: int, database_url: str | None) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in MiB, exit code) of one import."""
    with tempfile.TemporaryDirectory() as home:
        path = Path(home) / "people.csv"
        write_file(path, rows)
        env = {**os.environ, "LINKER_HOME": home, "PYTHONPATH": str(ROOT)}
        if database_url:
            reset_postgres(database_url)
            env["LINKER_DATABASE_URL"] = database_url
        # Migrate first, so the import's figures hold the import only.
        subprocess.run([*LINKER, "db", "upgrade"], env=env, check=True,
                       capture_output=True)
        started = time.perf_counter()
        child = subprocess.Popen([*LINKER, "customers", "import", str(path)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)  # ru_maxrss: KiB on Linux
        seconds = time.perf_counter() - started
        cpu = usage.ru_utime + usage.ru_stime
        return seconds, cpu, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(describe_machine())
    for n in range(args.rounds):
        seconds, cpu, rss, code = one_round(args.rows, args.database_url)
        print(f"round {n + 1}: {args.rows:,} rows in {seconds:.1f} s wall, {cpu:.1f} s CPU "
              f"({args.rows / seconds:,.0f} rows/s), peak RSS {rss:,.0f} MiB, exit {code} "
              "(1 = some rows rejected, as planted)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
