"""Backfill runs in the database: the profiles a run or chunk still has to do, the
``backfill_progress`` rows (read, written, cleared), the links left without pulled data, the
lock that serialises the ends of chunks, the outcomes a run recorded, and the
``backfill_runs`` rows of the runs going on in a process (progress, heartbeat, cancel flag)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from linker.store.models import AutolinkOutcome, Customer, Integration, Link, PulledData
from linker.store.models import BackfillProgress as ProgressRow
from linker.store.models import BackfillRun as RunRow

_PG_CHUNK_LOCK = 0x4C6B4368  # "LkCh": serialises the end of chunks of one integration


def _left(integration_id: int, progress_key: str) -> tuple[Any, Any]:
    """The conditions on Customer: not linked to the integration, not done under the key."""
    return (~select(Link.id).where(Link.customer_id == Customer.id,
                                   Link.integration_id == integration_id).exists(),
            ~select(ProgressRow.customer_id).where(ProgressRow.customer_id == Customer.id,
                                                   ProgressRow.run_key == progress_key).exists())


def pending_ids(s: Session, integration_id: int, progress_key: str, first: str | None = None,
                last: str | None = None) -> list[str]:
    """Profiles not linked to the integration and not done under ``progress_key``, in id
    order (only ``first``..``last`` when both are given)."""
    query = select(Customer.id).where(*_left(integration_id, progress_key))
    if first is not None and last is not None:
        query = query.where(Customer.id >= first, Customer.id <= last)
    return list(s.scalars(query.order_by(Customer.id)))


def left_count(s: Session, integration_id: int, progress_key: str) -> int:
    """How many profiles are neither linked to the integration nor done under the key."""
    return int(s.scalar(select(func.count()).select_from(Customer)
                        .where(*_left(integration_id, progress_key))) or 0)


def not_linked_to_all(s: Session, integration_ids: Sequence[int]) -> list[str]:
    """Profiles not linked to every one of the integrations, in id order."""
    links = (select(func.count()).select_from(Link)
             .where(Link.customer_id == Customer.id, Link.integration_id.in_(integration_ids))
             .scalar_subquery())
    return list(s.scalars(select(Customer.id).where(links < len(set(integration_ids)))
                          .order_by(Customer.id)))


def done_ids(s: Session, progress_key: str, among: Sequence[str] | None = None) -> set[str]:
    """Profiles done under ``progress_key`` (only those ``among`` when given)."""
    query = select(ProgressRow.customer_id).where(ProgressRow.run_key == progress_key)
    if among is not None:
        query = query.where(ProgressRow.customer_id.in_(list(among)))
    return set(s.scalars(query))


def mark_done(s: Session, progress_key: str, customer_ids: Sequence[str], now: datetime
              ) -> None:
    """Record the profiles as done under the key; rows written already (by another worker)
    are kept."""
    insert = sqlite_insert if s.get_bind().dialect.name == "sqlite" else postgresql_insert
    s.execute(insert(ProgressRow).on_conflict_do_nothing(),
              [{"run_key": progress_key, "customer_id": cid, "done_at": now}
               for cid in customer_ids])


def clear_progress(s: Session, progress_key: str) -> int:
    """Delete the progress rows of the key; how many there were."""
    cleared = s.execute(delete(ProgressRow).where(ProgressRow.run_key == progress_key))
    return int(getattr(cleared, "rowcount", 0) or 0)


def lock_chunk_ends(s: Session, integration_id: int) -> None:
    """Serialise, until commit, the transactions ending chunks of the integration (a
    PostgreSQL advisory lock; SQLite write transactions are exclusive anyway)."""
    if s.get_bind().dialect.name != "sqlite":
        s.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"),
                  {"a": _PG_CHUNK_LOCK, "b": integration_id})


def links_without_data(s: Session, integration_ids: Sequence[int],
                       only: tuple[str, str] | None = None, *,
                       created_before: datetime | None = None,
                       created_since: datetime | None = None) -> list[tuple[str, int]]:
    """(customer id, integration id) of the links to the active ones of the integrations
    without successfully pulled data, in that order (``only``: profiles with ids from
    ``only[0]`` to ``only[1]``; ``created_before`` / ``created_since``: links made before /
    at or after that time)."""
    query = (
        select(Link.customer_id, Link.integration_id)
        .join(Integration, Integration.id == Link.integration_id)
        .outerjoin(PulledData, (PulledData.customer_id == Link.customer_id)
                   & (PulledData.integration_id == Link.integration_id))
        .where(Link.integration_id.in_(integration_ids), Integration.active.is_(True),
               PulledData.fetched_at.is_(None))
        .order_by(Link.customer_id, Link.integration_id))
    if only is not None:
        query = query.where(Link.customer_id >= only[0], Link.customer_id <= only[1])
    if created_before is not None:
        query = query.where(Link.created_at < created_before)
    if created_since is not None:
        query = query.where(Link.created_at >= created_since)
    return [(str(cid), int(iid)) for cid, iid in s.execute(query).all()]


def progress_ids(s: Session, progress_key: str, first: str, last: str, since: datetime
                 ) -> list[str]:
    """The profiles of ``first``..``last`` done under ``progress_key`` since ``since``."""
    return list(s.scalars(select(ProgressRow.customer_id).where(
        ProgressRow.run_key == progress_key,
        ProgressRow.customer_id >= first,
        ProgressRow.customer_id <= last,
        ProgressRow.done_at >= since)))


def outcome_counts(s: Session, integration_ids: Sequence[int], trigger: str, since: datetime
                   ) -> dict[str, int]:
    """Outcome → how many the integrations recorded with ``trigger`` since ``since``."""
    return {str(k): int(v) for k, v in s.execute(
        select(AutolinkOutcome.outcome, func.count()).where(
            AutolinkOutcome.integration_id.in_(integration_ids),
            AutolinkOutcome.trigger == trigger,
            AutolinkOutcome.created_at >= since).group_by(AutolinkOutcome.outcome)).all()}


def add_run(s: Session, row: RunRow, stale_before: datetime) -> None:
    """Register a running run (and forget the runs whose heartbeat is older than
    ``stale_before``: their processes died)."""
    s.execute(delete(RunRow).where(RunRow.heartbeat_at < stale_before))
    s.add(row)


def beat(s: Session, run: str, now: datetime, done: int | None = None,
         total: int | None = None, counts: Mapping[str, int] | None = None) -> bool:
    """Renew the run's heartbeat (and its ``done`` and ``total`` counts and its outcome
    ``counts`` when given); True when it was asked to stop (or its row is gone)."""
    values: dict[str, Any] = {"heartbeat_at": now}
    if done is not None:
        values["done"] = done
    if total is not None:
        values["total"] = total
    if counts is not None:
        values["counts"] = {str(k): int(v) for k, v in counts.items()}
    flags = s.execute(update(RunRow).where(RunRow.run == run).values(**values)
                      .returning(RunRow.cancel_requested_at)).all()
    return not flags or flags[0][0] is not None


def remove_run(s: Session, run: str) -> None:
    """Forget a run that ended."""
    s.execute(delete(RunRow).where(RunRow.run == run))


def live_runs(s: Session, fresh_since: datetime) -> list[RunRow]:
    """The runs whose heartbeat is at or after ``fresh_since``, oldest first."""
    return list(s.scalars(select(RunRow).where(RunRow.heartbeat_at >= fresh_since)
                          .order_by(RunRow.started_at, RunRow.run)))


def request_cancel(s: Session, run: str, now: datetime, fresh_since: datetime) -> bool:
    """Raise the cancel flag of a live run; False when there is no such run."""
    flagged = s.execute(update(RunRow).where(
        RunRow.run == run, RunRow.heartbeat_at >= fresh_since,
        RunRow.cancel_requested_at.is_(None)).values(cancel_requested_at=now)
        .returning(RunRow.run)).all()
    return bool(flagged) or bool(s.scalar(select(func.count()).select_from(RunRow).where(
        RunRow.run == run, RunRow.heartbeat_at >= fresh_since)))
