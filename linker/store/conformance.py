"""Stored conformance report cards in the database."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from linker.store.models import ConformanceRun


def add_run(s: Session, run: ConformanceRun) -> ConformanceRun:
    """Add a report card (flushed, so ``.id`` is set) and return it."""
    s.add(run)
    s.flush()
    return run


def runs_of(s: Session, integration_id: int, limit: int) -> list[ConformanceRun]:
    """The integration's newest ``limit`` report cards, newest first."""
    return list(s.scalars(select(ConformanceRun)
                          .where(ConformanceRun.integration_id == integration_id)
                          .order_by(ConformanceRun.started_at.desc(), ConformanceRun.id.desc())
                          .limit(limit)))


def run_of(s: Session, run_id: int) -> ConformanceRun | None:
    """One report card, or None."""
    return s.get(ConformanceRun, run_id)
