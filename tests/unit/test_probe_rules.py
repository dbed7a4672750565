"""The probe rules: settings validation, when a probe is due, and the degraded verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from linker.core.errors import InvalidInput
from linker.core.probes import (
    MAX_EVERY_MINUTES,
    ProbeSettingsInput,
    is_due,
    next_due,
    probe_verdict,
    validate_probe_settings,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_valid_settings_are_normalised() -> None:
    settings = validate_probe_settings(ProbeSettingsInput(
        True, 15, 800, " Ada@Example.COM ", "+1 415 555 2671"))
    assert settings.known_email == "ada@example.com"
    assert settings.known_phone == "+14155552671"
    assert settings.p95_slo_ms == 800.0 and settings.every_minutes == 15


def test_zero_or_none_slo_means_no_slo() -> None:
    for slo in (None, 0, 0.0):
        assert validate_probe_settings(
            ProbeSettingsInput(True, 5, slo, "a@b.com")).p95_slo_ms is None


@pytest.mark.parametrize(("given", "field"), [
    (ProbeSettingsInput(True, 0, None, "a@b.com"), "every_minutes"),
    (ProbeSettingsInput(True, MAX_EVERY_MINUTES + 1, None, "a@b.com"), "every_minutes"),
    (ProbeSettingsInput(True, True, None, "a@b.com"), "every_minutes"),  # type: ignore[arg-type]
    (ProbeSettingsInput(True, 15, -5, "a@b.com"), "p95_slo_ms"),
    (ProbeSettingsInput(True, 15, float("nan"), "a@b.com"), "p95_slo_ms"),
    (ProbeSettingsInput(True, 15, 10_000_000, "a@b.com"), "p95_slo_ms"),
    (ProbeSettingsInput(True, 15, None, ""), "known_email"),
    (ProbeSettingsInput(False, 15, None, "not-an-email"), "known_email"),
    (ProbeSettingsInput(True, 15, None, "a@b.com", "12"), "known_phone"),
])
def test_bad_settings_name_their_field(given: ProbeSettingsInput, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_probe_settings(given)
    assert list(refused.value.fields) == [field]
    assert refused.value.fields[field]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_probe_settings(ProbeSettingsInput(True, 0, -1, ""))
    assert set(refused.value.fields) == {"every_minutes", "p95_slo_ms", "known_email"}


def test_a_disabled_probe_needs_no_email() -> None:
    assert validate_probe_settings(ProbeSettingsInput(False)).known_email == ""


def test_due_when_never_run_or_the_interval_has_passed() -> None:
    assert next_due(15, None, NOW) == NOW and is_due(15, None, NOW)
    last = NOW - timedelta(minutes=14, seconds=59)
    assert not is_due(15, last, NOW)
    assert next_due(15, last, NOW) == last + timedelta(minutes=15)
    assert is_due(15, NOW - timedelta(minutes=15), NOW)


def test_a_passing_probe_within_its_slo_is_not_degraded() -> None:
    verdict = probe_verdict(passed=True, failed_checks=(), p95_ms=120.0, slo_ms=500.0)
    assert not verdict.degraded
    assert "within the SLO of 500 ms" in verdict.reason


def test_a_failed_check_degrades_and_is_named() -> None:
    verdict = probe_verdict(passed=False, failed_checks=("Reachable",), p95_ms=None,
                            slo_ms=500.0)
    assert verdict.degraded and verdict.reason == "failed 1 check(s): Reachable"


def test_p95_over_the_slo_degrades_a_passing_probe() -> None:
    verdict = probe_verdict(passed=True, failed_checks=(), p95_ms=812.4, slo_ms=500.0)
    assert verdict.degraded and verdict.reason == "p95 812 ms is over the SLO of 500 ms"


def test_both_reasons_are_given() -> None:
    verdict = probe_verdict(passed=False, failed_checks=("A", "B"), p95_ms=900, slo_ms=100)
    assert verdict.degraded
    assert verdict.reason == "failed 2 check(s): A, B; p95 900 ms is over the SLO of 100 ms"


def test_without_an_slo_latency_alone_never_degrades() -> None:
    assert not probe_verdict(passed=True, failed_checks=(), p95_ms=99_999.0,
                             slo_ms=None).degraded
    assert not probe_verdict(passed=True, failed_checks=(), p95_ms=None,
                             slo_ms=100.0).degraded
    assert probe_verdict(passed=True, failed_checks=(), p95_ms=100.0,
                         slo_ms=100.0).degraded is False  # at the SLO is within it
