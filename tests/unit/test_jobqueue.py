"""The job queue's packaging: migration 0011 matches the installed procrastinate, and the
command line stays light (procrastinate is imported only by `linker worker`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from procrastinate.schema import SchemaManager

ROOT = Path(__file__).resolve().parents[2]
MIGRATION = ROOT / "linker/store/migrations/versions/0011_procrastinate_schema.py"


def test_migration_0011_applies_the_schema_of_the_installed_procrastinate() -> None:
    spec = importlib.util.spec_from_file_location("m0011", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    newest = max(p.stem for p in Path(SchemaManager.get_migrations_path()).glob("*.sql"))
    # A newer procrastinate ships newer migrations: add an alembic migration applying them
    # on PostgreSQL (see migration 0011's docstring), then move PROCRASTINATE_SCHEMA on.
    assert newest == module.PROCRASTINATE_SCHEMA
    assert module.down_revision == "0007" and module.revision == "0011"


def test_the_command_line_does_not_import_procrastinate() -> None:
    probe = ("import sys; from linker.cli.main import build_parser; build_parser(); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'procrastinate'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_chunk_retries_skip_lasting_service_errors() -> None:
    from datetime import UTC, datetime

    from procrastinate.exceptions import JobAborted
    from procrastinate.jobs import Job

    from linker.services.errors import InvalidInput, PermissionDenied
    from linker.services.jobs import CHUNK_RETRY
    from linker.services.leases import BackfillBusy

    def decision(exc: BaseException, attempts: int = 0) -> object:
        job = Job(queue="backfill", lock=None, queueing_lock=None,
                  task_name="linker.backfill_chunk", attempts=attempts)
        return CHUNK_RETRY.get_retry_decision(exception=exc, job=job)

    now = datetime(2026, 12, 3, tzinfo=UTC)
    assert decision(InvalidInput({"integrations": "switched off"})) is None
    assert decision(PermissionDenied("no")) is None
    assert decision(BackfillBusy("Shop", "w on h (pid 1)", now, now)) is not None
    assert decision(JobAborted("worker shutting down")) is not None
    assert decision(OSError("database gone")) is not None
    assert decision(OSError("database gone"), attempts=8) is None  # gave up
