"""The integration config rules (linker.core.integration_config), without a database."""

from __future__ import annotations

import pytest

from linker.core.errors import InvalidInput
from linker.core.integration_config import (
    HeaderSpec,
    IntegrationChanges,
    IntegrationConfig,
    IntegrationSpec,
    SecretChange,
    caps_text,
    changed_settings,
    secrets_changed,
    timeout_problem,
    url_problem,
    validate_config,
)
from linker.lookup.ratelimit import RateCap
from linker.lookup.target import AdaptorTarget, InvalidTarget
from linker.services.targets import target_of


def _config(**changes: object) -> IntegrationConfig:
    spec = IntegrationSpec(name="Shop", url="https://shop.example/lookup", password="pw",
                           headers=(HeaderSpec("X-Api-Key", "k1", secret=True),))
    return validate_config(IntegrationConfig.of_spec(spec).changed(IntegrationChanges.of(
        changes)))


def test_a_secret_change_keeps_replaces_or_removes() -> None:
    assert SecretChange.keep().resolve("old") == "old"
    assert SecretChange.replace("new").resolve("old") == "new"
    assert SecretChange.replace("").resolve("old") == "old"  # an empty field keeps
    assert SecretChange.remove().resolve("old") == ""
    assert [SecretChange.of(v).action for v in (None, "", "x")] == ["keep", "remove", "replace"]
    assert "new" not in repr(SecretChange.replace("new"))


def test_changes_resolve_secrets_against_the_stored_config() -> None:
    stored = _config()
    assert stored.changed(IntegrationChanges()).password == "pw"
    assert stored.changed(IntegrationChanges(password=SecretChange.remove())).password == ""
    replaced = stored.changed(IntegrationChanges(password="pw2", timeout_s=9))
    assert changed_settings(stored, replaced) == ("password", "timeout_s")
    assert secrets_changed(stored, replaced) == ("password",)
    assert "pw" not in repr(replaced)


def test_a_full_spec_sets_every_setting_and_unknown_names_are_refused() -> None:
    spec = IntegrationSpec(name="Shop", url="https://shop.example/", active=False)
    assert IntegrationChanges.of(spec).active is False
    with pytest.raises(InvalidInput) as info:
        IntegrationChanges.of({"colour": "red"})
    assert info.value.fields == {"colour": "not an integration setting"}


def test_a_secret_header_without_a_value_keeps_the_stored_one() -> None:
    stored = _config()
    raw = stored.changed(IntegrationChanges(headers=(HeaderSpec("x-api-key", None, True),)))
    assert validate_config(raw, stored.headers).headers == (HeaderSpec("x-api-key", "k1", True),)
    with pytest.raises(InvalidInput, match="give a value for X-New"):
        validate_config(raw.changed(IntegrationChanges(
            headers=(HeaderSpec("X-New", None, True),))), stored.headers)


@pytest.mark.parametrize(("url", "local_only_says"), [
    ("http://localhost:8080/", None), ("http://127.9.8.7/", None), ("http://[::1]/", None),
    ("https://shop.example/", None), ("http://shop.example/", "use https"),
    ("http://1.2.3.999/", "invalid IPv4"), ("ftp://127.0.0.1/", "http(s)"),
    ("", "give the adaptor's URL"),
])
def test_one_url_rule_for_integrations_and_targets(url: str, local_only_says: str | None
                                                    ) -> None:
    problem = url_problem(url, https_off_loopback=True)
    assert (problem is None) if local_only_says is None else (local_only_says in str(problem))
    if local_only_says != "use https":  # an ad-hoc target may use http anywhere
        assert (url_problem(url) is None) == (problem is None)
    if problem and local_only_says != "use https":
        with pytest.raises(InvalidTarget):
            AdaptorTarget(url)


def test_timeouts() -> None:
    assert timeout_problem(1) is None and timeout_problem(15) is None
    assert "1 to 15" in str(timeout_problem(0.5)) and "number" in str(timeout_problem(True))
    assert timeout_problem(60, positive_only=True) is None
    assert "positive" in str(timeout_problem(0, positive_only=True))


def test_validation_reports_every_bad_field_together() -> None:
    raw = IntegrationConfig.of_spec(IntegrationSpec(
        name=" ", url="http://shop.example/", realm='a"b', timeout_s=99,
        autolink_enabled=True))
    with pytest.raises(InvalidInput) as info:
        validate_config(raw)
    assert set(info.value.fields) == {"name", "url", "realm", "timeout_s", "autolink_fields"}


def test_rate_caps_in_changes_none_keeps_zero_removes_a_number_sets() -> None:
    stored = _config(max_concurrent_requests=4, max_requests_per_second=2.5)
    assert (stored.max_concurrent_requests, stored.max_requests_per_second) == (4, 2.5)
    kept = validate_config(stored.changed(IntegrationChanges(timeout_s=9)))
    assert (kept.max_concurrent_requests, kept.max_requests_per_second) == (4, 2.5)
    removed = validate_config(stored.changed(IntegrationChanges(max_concurrent_requests=0)))
    assert (removed.max_concurrent_requests, removed.max_requests_per_second) == (None, 2.5)
    assert changed_settings(stored, removed) == ("max_concurrent_requests",)
    assert caps_text(removed.max_concurrent_requests,
                     removed.max_requests_per_second) == "2.5 per second"
    set_ = validate_config(stored.changed(IntegrationChanges(max_requests_per_second=10)))
    assert set_.max_requests_per_second == 10.0


def test_a_full_spec_without_caps_removes_them() -> None:
    stored = _config(max_concurrent_requests=4, max_requests_per_second=2.5)
    spec = IntegrationSpec(name="Shop", url="https://shop.example/lookup")
    changes = IntegrationChanges.of(spec)  # the page's and apply's full spec
    assert (changes.max_concurrent_requests, changes.max_requests_per_second) == (0, 0)
    after = validate_config(stored.changed(changes), stored.headers)
    assert (after.max_concurrent_requests, after.max_requests_per_second) == (None, None)
    assert not after.rate_capped and stored.rate_capped


def test_bad_caps_are_reported_with_the_other_fields() -> None:
    raw = IntegrationConfig.of_spec(IntegrationSpec(
        name="Shop", url="https://shop.example/", timeout_s=99, max_concurrent_requests=300,
        max_requests_per_second=-1))
    with pytest.raises(InvalidInput) as info:
        validate_config(raw)
    assert set(info.value.fields) == {"timeout_s", "max_concurrent_requests",
                                      "max_requests_per_second"}
    assert "use 1 to 256" in info.value.fields["max_concurrent_requests"]


def test_the_target_gets_the_caps_under_the_integration_id() -> None:
    config = _config(max_requests_per_second=5)
    assert target_of(config, 7).rate_cap == RateCap(7, None, 5.0)
    assert target_of(config).rate_cap is None  # no id yet: no budget to share
    assert target_of(_config(), 7).rate_cap is None
