"""Real `linker worker` processes for tests on PostgreSQL, and polling with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from linker.services.context import ServiceContext

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 120.0
STALLED_AFTER_S = 2.0
"""Workers started here give up a dead worker's job after this long without a heartbeat."""


def wait_for(check: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after the deadline."""
    end = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(0.1)  # a poll interval, not a wait for an event


class Workers:
    """`linker worker` subprocesses on the test database; stopped (SIGTERM, then SIGKILL) at
    the end."""

    def __init__(self, ctx: ServiceContext, home: Path) -> None:
        settings = ctx.settings
        self.env = {**os.environ, "LINKER_HOME": str(home),
                    "LINKER_DATABASE_URL": settings.database_url,
                    "LINKER_SECRET_KEY": settings.secret_key or "",
                    "PYTHONPATH": str(ROOT)}
        self.db = ctx.db
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.home = home

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        """One more worker; returns once the queue lists one more live worker."""
        before = self.newest()
        log = self.home / f"worker{len(self.procs)}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "linker.cli.main", "worker", "--concurrency", "1",
             "--stalled-after", str(STALLED_AFTER_S), "--shutdown-timeout", "1", *extra],
            env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.logs.append(log)
        wait_for(lambda: self.newest() > before or proc.poll() is not None,
                 "a worker to start")
        assert proc.poll() is None, log.read_text()
        return proc

    def newest(self) -> int:
        """The id of the newest worker the queue registered (0: none yet)."""
        with self.db.session(readonly=True) as s:
            return int(s.scalar(text("SELECT coalesce(max(id), 0) FROM procrastinate_workers"))
                       or 0)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
