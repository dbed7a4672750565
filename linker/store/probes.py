"""Probe settings and schedule state in the database (``probe_settings``), and the reads of
the Health page's probe column (each integration with its latest probe's report card)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from linker.core.probes import ProbeSettings
from linker.store.models import ConformanceRun, Integration, ProbeSetting


def setting_of(s: Session, integration_id: int) -> ProbeSetting | None:
    """The integration's probe settings row, or None when none was ever saved."""
    return s.get(ProbeSetting, integration_id)


def save_setting(s: Session, integration_id: int, settings: ProbeSettings, *, by: str,
                 now: datetime) -> ProbeSetting:
    """Insert or update the integration's probe settings (the schedule state is kept)."""
    row = s.get(ProbeSetting, integration_id)
    if row is None:
        row = ProbeSetting(integration_id=integration_id)
        s.add(row)
    row.enabled = settings.enabled
    row.every_minutes = settings.every_minutes
    row.p95_slo_ms = settings.p95_slo_ms
    row.known_email = settings.known_email
    row.known_phone = settings.known_phone
    row.updated_at = now
    row.updated_by = by
    s.flush()
    return row


def enabled_of_active(s: Session) -> list[ProbeSetting]:
    """Enabled probe settings of active integrations, by integration id."""
    return list(s.scalars(
        select(ProbeSetting).join(Integration, Integration.id == ProbeSetting.integration_id)
        .where(ProbeSetting.enabled.is_(True), Integration.active.is_(True))
        .order_by(ProbeSetting.integration_id)))


def claim(s: Session, integration_id: int, now: datetime, *, force: bool = False) -> bool:
    """Mark the integration's probe started at ``now`` if it is enabled and due (its last
    start at least ``every_minutes`` ago; any time with ``force``). One conditional UPDATE,
    so of two runners racing for one probe only one gets True."""
    row = s.get(ProbeSetting, integration_id)
    if row is None or not row.enabled:
        return False
    threshold = now if force else now - timedelta(minutes=row.every_minutes)
    result = s.execute(
        update(ProbeSetting)
        .where(ProbeSetting.integration_id == integration_id,
               ProbeSetting.enabled.is_(True),
               or_(ProbeSetting.last_started_at.is_(None),
                   ProbeSetting.last_started_at <= threshold))
        .values(last_started_at=now)
        .execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


def set_last_run(s: Session, integration_id: int, run_id: int) -> None:
    """Point the integration's probe at its newest report card."""
    s.execute(update(ProbeSetting).where(ProbeSetting.integration_id == integration_id)
              .values(last_run_id=run_id).execution_options(synchronize_session=False))


@dataclass(frozen=True)
class ProbeRow:
    """One integration with its probe settings (None: never set) and latest probe card."""

    integration_id: int
    name: str
    active: bool
    setting: ProbeSetting | None
    last_run: ConformanceRun | None


def rows(s: Session) -> list[ProbeRow]:
    """Every integration, by name, with its probe settings and its latest probe's card."""
    found = s.execute(
        select(Integration.id, Integration.name, Integration.active, ProbeSetting,
               ConformanceRun)
        .outerjoin(ProbeSetting, ProbeSetting.integration_id == Integration.id)
        .outerjoin(ConformanceRun, ConformanceRun.id == ProbeSetting.last_run_id)
        .order_by(Integration.name)).all()
    return [ProbeRow(int(i), str(n), bool(a), setting, run) for i, n, a, setting, run in found]
