"""Coverage reads in the database: profile and first-link counts per day, the profiles not
linked to an integration with their reason (keyset on the customer id), and the totals of the
coverage report (links per integration, latest outcomes, links per day)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, case, func, select
from sqlalchemy.orm import Session

from linker.store.models import (
    AutolinkOutcome,
    Customer,
    CustomerEmail,
    Integration,
    Link,
    Suppression,
)


def customers_created_before(s: Session, start: datetime) -> int:
    """How many profiles were created before ``start``."""
    return int(s.scalar(select(func.count()).select_from(Customer)
                        .where(Customer.created_at < start)) or 0)


def customers_created_per_day(s: Session, start: datetime) -> dict[str, int]:
    """Profiles created per day (ISO date) from ``start`` on."""
    return _per_day(s, select(Customer.created_at.label("at")), start)


def first_linked_before(s: Session, start: datetime) -> int:
    """How many profiles (that still have a link) got their first link before ``start``: the
    profiles with a link made before it (a range of the ``created_at`` index, not a grouping
    of every link)."""
    return int(s.scalar(select(func.count(func.distinct(Link.customer_id)))
                        .where(Link.created_at < start)) or 0)


def first_linked_per_day(s: Session, start: datetime) -> dict[str, int]:
    """Profiles per day (ISO date) of their first (still existing) link, from ``start`` on."""
    return _per_day(s, select(_first_links().c.at), start)


def unlinked_reason_counts(s: Session, integration_id: int) -> dict[str, int]:
    """Profiles not linked to the integration, per reason (only reasons that occur), without
    reading every profile (at 100,000 profiles a join of each with its links, suppression,
    latest attempt and email took most of the Coverage page's time): the suppressed and the
    tried are counted from the integration's suppressions and attempts, and "never tried" is
    the rest of the profiles without a link (profiles minus the integration's links; a link,
    a suppression or an attempt always has its profile: foreign keys)."""
    unlinked = customer_count(s) - int(s.scalar(
        select(func.count()).select_from(Link).where(Link.integration_id == integration_id))
        or 0)
    suppressed = int(s.scalar(select(func.count()).select_from(Suppression).where(
        Suppression.integration_id == integration_id,
        _no_link(Suppression.customer_id, integration_id))) or 0)
    latest = (select(func.max(AutolinkOutcome.id).label("oid"))
              .where(AutolinkOutcome.integration_id == integration_id)
              .group_by(AutolinkOutcome.customer_id).subquery())
    rows = s.execute(
        select(AutolinkOutcome.outcome, func.count())
        .join(latest, latest.c.oid == AutolinkOutcome.id)
        .where(_no_link(AutolinkOutcome.customer_id, integration_id),
               ~select(Suppression.customer_id).where(
                   Suppression.customer_id == AutolinkOutcome.customer_id,
                   Suppression.integration_id == integration_id).exists())
        .group_by(AutolinkOutcome.outcome)).all()
    counts = {str(o): int(n) for o, n in rows}
    counts["suppressed"] = suppressed
    counts["never_tried"] = unlinked - sum(counts.values())
    return {reason: n for reason, n in counts.items() if n}


def unlinked_page(s: Session, integration_id: int, reason: str | None, after: str | None,
                  limit: int) -> Sequence[Row[Any]]:
    """Up to ``limit`` profiles not linked to the integration (with ``reason``: only those),
    by customer id after ``after``: customer_id, name, email, reason, detail, attempted_at,
    exchange_id."""
    query, reason_col = _unlinked(integration_id)
    if reason is not None:
        query = query.where(reason_col == reason)
    if after is not None:
        query = query.where(Customer.id > after)
    return s.execute(query.order_by(Customer.id).limit(limit)).all()


def _no_link(customer_id: Any, integration_id: int) -> Any:
    """The profile ``customer_id`` (a column) has no link to the integration."""
    return ~select(Link.id).where(Link.customer_id == customer_id,
                                  Link.integration_id == integration_id).exists()


def _first_links() -> Any:
    return select(func.min(Link.created_at).label("at")).group_by(Link.customer_id).subquery()


def _per_day(s: Session, times: Any, start: datetime) -> dict[str, int]:
    sub = times.subquery()
    day = func.date(sub.c.at)
    return {str(d): int(n) for d, n in s.execute(
        select(day, func.count()).where(sub.c.at >= start).group_by(day)).all()}


def _unlinked(integration_id: int) -> tuple[Any, Any]:
    """Customers without a link to the integration, their reason and latest attempt."""
    latest = (select(AutolinkOutcome.customer_id.label("cid"),
                     func.max(AutolinkOutcome.id).label("oid"))
              .where(AutolinkOutcome.integration_id == integration_id)
              .group_by(AutolinkOutcome.customer_id).subquery())
    reason = case((Suppression.customer_id.is_not(None), "suppressed"),
                  (AutolinkOutcome.id.is_(None), "never_tried"),
                  else_=AutolinkOutcome.outcome).label("reason")
    query = (
        select(Customer.id.label("customer_id"), Customer.name.label("name"),
               CustomerEmail.original.label("email"), reason,
               AutolinkOutcome.reason.label("detail"),
               AutolinkOutcome.created_at.label("attempted_at"),
               AutolinkOutcome.exchange_id.label("exchange_id"))
        .outerjoin(Link, and_(Link.customer_id == Customer.id,
                              Link.integration_id == integration_id))
        .outerjoin(Suppression, and_(Suppression.customer_id == Customer.id,
                                     Suppression.integration_id == integration_id))
        .outerjoin(latest, latest.c.cid == Customer.id)
        .outerjoin(AutolinkOutcome, AutolinkOutcome.id == latest.c.oid)
        .outerjoin(CustomerEmail, and_(CustomerEmail.customer_id == Customer.id,
                                       CustomerEmail.position == 0))
        .where(Link.id.is_(None))
    )
    return query, reason


def customer_count(s: Session) -> int:
    """How many profiles there are."""
    return int(s.scalar(select(func.count()).select_from(Customer)) or 0)


def linked_customer_count(s: Session) -> int:
    """How many profiles have at least one link."""
    return int(s.scalar(select(func.count(func.distinct(Link.customer_id)))) or 0)


def links_per_integration(s: Session) -> list[tuple[int, str, bool, int, int, int]]:
    """Per integration, by name: id, name, active, links, auto-made links, manual links."""
    rows = s.execute(
        select(
            Integration.id, Integration.name, Integration.active,
            func.count(Link.id),
            func.coalesce(func.sum(case((Link.method == "auto", 1), else_=0)), 0),
            func.coalesce(func.sum(case((Link.method == "manual", 1), else_=0)), 0),
        )
        .outerjoin(Link, Link.integration_id == Integration.id)
        .group_by(Integration.id, Integration.name, Integration.active)
        .order_by(Integration.name)
    ).all()
    return [(int(i), str(n), bool(a), int(c), int(au), int(m)) for i, n, a, c, au, m in rows]


def latest_outcome_counts(s: Session) -> dict[str, int]:
    """Outcome → how many (profile, integration) pairs have it as their latest outcome (only
    outcomes that occur)."""
    latest = (
        select(func.max(AutolinkOutcome.id).label("id"))
        .group_by(AutolinkOutcome.customer_id, AutolinkOutcome.integration_id)
        .subquery()
    )
    rows = s.execute(
        select(AutolinkOutcome.outcome, func.count())
        .join(latest, latest.c.id == AutolinkOutcome.id)
        .group_by(AutolinkOutcome.outcome)
    ).all()
    return {str(o): int(c) for o, c in rows}


def links_created_per_day(s: Session, since: datetime) -> list[tuple[str, int]]:
    """(ISO date, links created that day) from ``since`` on, by day (days without links
    omitted)."""
    day = func.date(Link.created_at)
    rows = s.execute(select(day, func.count()).where(Link.created_at >= since)
                     .group_by(day).order_by(day)).all()
    return [(str(d), int(c)) for d, c in rows]
