"""The job queue's side of the database: Procrastinate's connector for Linker's database URL,
and the reads of its tables Linker needs (live workers, the chunk jobs of a backfill run).

Procrastinate's tables live beside Linker's (alembic migration 0011 creates them on
PostgreSQL, in the schema the URL's ``search_path`` selects). SQLite has no job queue.
Procrastinate itself is imported only when a connector is built, so importing this module
stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from procrastinate import PsycopgConnector

ACTIVE_STATUSES = ("todo", "doing")
"""Job statuses of work not finished yet."""
TABLE_PREFIX = "procrastinate_"
"""Every table of the job queue starts with it (they are not Linker's models)."""


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic ``include_name`` hook: leave the job queue's tables (and so their indexes) out
    of autogenerate comparisons with Linker's models."""
    return not (type_ == "table" and name is not None and name.startswith(TABLE_PREFIX))


def conninfo(url: str | URL) -> str:
    """The libpq connection string (``postgresql://...``) of a SQLAlchemy PostgreSQL URL,
    query options (e.g. ``options=-csearch_path=...``) included."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("the job queue needs PostgreSQL; SQLite runs jobs in-process")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def connector(url: str | URL, *, max_size: int = 4) -> PsycopgConnector:
    """A Procrastinate connector on the database at ``url`` (its pool opens with the app)."""
    from procrastinate import PsycopgConnector

    return PsycopgConnector(conninfo=conninfo(url), min_size=1, max_size=max(max_size, 2))


def live_workers(session: Session, stalled_after_s: float) -> int:
    """Workers whose heartbeat is younger than ``stalled_after_s`` seconds."""
    return int(session.scalar(text(
        "SELECT count(*) FROM procrastinate_workers "
        "WHERE last_heartbeat >= now() - make_interval(secs => :s)"),
        {"s": stalled_after_s}) or 0)


@dataclass(frozen=True)
class JobRow:
    """One job of the queue: id, status, attempts and its arguments."""

    id: int
    status: str
    attempts: int
    args: dict[str, Any]


def jobs_of_run(session: Session, task_name: str, run_id: str) -> list[JobRow]:
    """Every job of ``task_name`` whose ``run`` argument is ``run_id``, in id order."""
    rows = session.execute(text(
        "SELECT id, status::text, attempts, args FROM procrastinate_jobs "
        "WHERE task_name = :task AND args->>'run' = :run ORDER BY id"),
        {"task": task_name, "run": run_id}).all()
    return [JobRow(int(r[0]), str(r[1]), int(r[2]), dict(r[3])) for r in rows]


def active_jobs_of_integrations(session: Session, task_name: str,
                                integration_ids: list[int]) -> list[JobRow]:
    """Unfinished jobs of ``task_name`` whose ``integration_id`` argument is one of these."""
    rows = session.execute(text(
        "SELECT id, status::text, attempts, args FROM procrastinate_jobs "
        "WHERE task_name = :task AND status IN ('todo', 'doing') "
        "AND (args->>'integration_id')::int = ANY(:ids) ORDER BY id"),
        {"task": task_name, "ids": list(integration_ids)}).all()
    return [JobRow(int(r[0]), str(r[1]), int(r[2]), dict(r[3])) for r in rows]


def latest_run(session: Session, task_name: str) -> str | None:
    """The ``run`` argument of the newest job of ``task_name`` (None when there is none)."""
    value = session.scalar(text(
        "SELECT args->>'run' FROM procrastinate_jobs WHERE task_name = :task "
        "ORDER BY id DESC LIMIT 1"), {"task": task_name})
    return None if value is None else str(value)
