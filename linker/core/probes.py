"""Scheduled conformance probes: the settings rules, when a probe is due, and when the latest
probe makes an integration degraded. Pure (no I/O); the probe service applies them.

    settings = validate_probe_settings(ProbeSettingsInput(True, 15, 800.0, "a@b.com", None))
    next_due(settings.every_minutes, last_started_at=None, now=now)   # now: never probed
    probe_verdict(passed=False, failed_checks=("Reachable",), p95_ms=None, slo_ms=None)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from linker.core.errors import InvalidInput
from linker.core.identity import InvalidContact, normalize_email, normalize_phone

DEFAULT_EVERY_MINUTES = 15
MIN_EVERY_MINUTES = 1
MAX_EVERY_MINUTES = 1440
MAX_SLO_MS = 600_000.0
"""The largest p95 SLO accepted (10 minutes): anything above is a typo."""


@dataclass(frozen=True)
class ProbeSettingsInput:
    """What an admin sets for one integration's probe (form or CLI), not yet validated."""

    enabled: bool
    every_minutes: int = DEFAULT_EVERY_MINUTES
    p95_slo_ms: float | None = None
    """None (or 0 from a form): no latency SLO, only failed checks degrade."""
    known_email: str = ""
    known_phone: str | None = None


@dataclass(frozen=True)
class ProbeSettings:
    """Validated probe settings (email normalised, phone in E.164, no SLO as None)."""

    enabled: bool
    every_minutes: int
    p95_slo_ms: float | None
    known_email: str
    known_phone: str | None


def validate_probe_settings(given: ProbeSettingsInput) -> ProbeSettings:
    """The settings, or InvalidInput with one message per bad field. The known email is
    needed whenever one is given or the probe is enabled (the checks look that person up)."""
    problems: dict[str, str] = {}
    every = given.every_minutes
    if isinstance(every, bool) or not isinstance(every, int) or not (
            MIN_EVERY_MINUTES <= every <= MAX_EVERY_MINUTES):
        problems["every_minutes"] = (f"must be a whole number of minutes from "
                                     f"{MIN_EVERY_MINUTES} to {MAX_EVERY_MINUTES} (a day)")
    slo = given.p95_slo_ms
    if slo is not None and slo != 0 and not (
            isinstance(slo, int | float) and math.isfinite(slo) and 0 < slo <= MAX_SLO_MS):
        problems["p95_slo_ms"] = (f"must be a number of milliseconds from 1 to "
                                  f"{MAX_SLO_MS:.0f}, or empty for no SLO")
    email = (given.known_email or "").strip()
    if email:
        try:
            email = normalize_email(email)
        except InvalidContact as exc:
            problems["known_email"] = str(exc)
    elif given.enabled:
        problems["known_email"] = ("give the email of a person the adaptor holds (the "
                                   "checks look them up), e.g. ada@example.com")
    phone = (given.known_phone or "").strip() or None
    if phone is not None:
        try:
            phone = normalize_phone(phone)
        except InvalidContact as exc:
            problems["known_phone"] = str(exc)
    if problems:
        raise InvalidInput(problems)
    return ProbeSettings(bool(given.enabled), int(every), float(slo) if slo else None,
                         email, phone)


def next_due(every_minutes: int, last_started_at: datetime | None,
             now: datetime) -> datetime:
    """When the next probe is due: ``every_minutes`` after the last one started (``now``
    when it never ran)."""
    if last_started_at is None:
        return now
    return last_started_at + timedelta(minutes=every_minutes)


def is_due(every_minutes: int, last_started_at: datetime | None, now: datetime) -> bool:
    """True when the next probe's time has come."""
    return next_due(every_minutes, last_started_at, now) <= now


@dataclass(frozen=True)
class ProbeVerdict:
    """Whether the latest probe degrades its integration, and why in words."""

    degraded: bool
    reason: str


def probe_verdict(*, passed: bool, failed_checks: Sequence[str], p95_ms: float | None,
                  slo_ms: float | None) -> ProbeVerdict:
    """Degraded when the probe failed a required check, or when its p95 latency is over the
    SLO (no SLO, or no p95 measured: latency alone never degrades)."""
    reasons = []
    if not passed or failed_checks:
        named = ", ".join(failed_checks) or "a required check"
        reasons.append(f"failed {len(failed_checks) or 1} check(s): {named}")
    if slo_ms is not None and p95_ms is not None and p95_ms > slo_ms:
        reasons.append(f"p95 {p95_ms:.0f} ms is over the SLO of {slo_ms:.0f} ms")
    if reasons:
        return ProbeVerdict(True, "; ".join(reasons))
    within = f"; p95 {p95_ms:.0f} ms within the SLO of {slo_ms:.0f} ms" if (
        slo_ms is not None and p95_ms is not None) else ""
    return ProbeVerdict(False, f"every required check passed{within}")
