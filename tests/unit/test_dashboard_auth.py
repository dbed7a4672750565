"""The pure sign-in rules of the dashboard: OIDC claims → role, the dev override, pages per
role, OIDC settings from secrets."""

from __future__ import annotations

import pytest

from dashboard.auth import (
    PAGES,
    DevRoleRefused,
    claim_values,
    dev_role,
    oidc_config,
    pages_for,
    role_from_claims,
    username_from_claims,
)
from linker.core.permissions import Actor, Role

MAPPING = {"linker-admins": "admin", "linker-devs": "developer", "support-leads": "support_lead",
           "agents": "agent"}


# -- role_from_claims -------------------------------------------------------------------------


@pytest.mark.parametrize(("groups", "role"), [
    (["agents"], Role.AGENT),
    (["support-leads"], Role.SUPPORT_LEAD),
    (["linker-devs"], Role.DEVELOPER),
    (["linker-admins"], Role.ADMIN),
    (["agents", "support-leads"], Role.SUPPORT_LEAD),
    (["agents", "linker-devs", "support-leads"], Role.DEVELOPER),
    (["agents", "linker-admins", "linker-devs"], Role.ADMIN),
    (["staff", "agents"], Role.AGENT),
])
def test_the_highest_privilege_mapped_role_wins(groups: list[str], role: Role) -> None:
    assert role_from_claims({"groups": groups}, "groups", MAPPING) is role


@pytest.mark.parametrize("value", ["agents,linker-devs", " agents , linker-devs ",
                                   "linker-devs"])
def test_comma_separated_strings_are_split(value: str) -> None:
    assert role_from_claims({"groups": value}, "groups", MAPPING) is Role.DEVELOPER


@pytest.mark.parametrize("claims", [
    {},                                   # no claim at all
    {"groups": []},
    {"groups": ""},
    {"groups": ["staff", "visitors"]},    # nothing mapped
    {"groups": ["Agents"]},               # values compare exactly
    {"groups": 42},                       # not a list or string
    {"roles": ["agents"]},                # another claim
])
def test_no_match_refuses(claims: dict[str, object]) -> None:
    assert role_from_claims(claims, "groups", MAPPING) is None


def test_the_claim_is_configurable_and_may_be_nested() -> None:
    claims = {"roles": ["linker-admins"], "realm_access": {"roles": ["agents"]}}
    assert role_from_claims(claims, "roles", MAPPING) is Role.ADMIN
    assert role_from_claims(claims, "realm_access.roles", MAPPING) is Role.AGENT
    assert role_from_claims(claims, "realm_access.missing", MAPPING) is None


def test_mapping_targets_are_role_names_in_any_case() -> None:
    assert role_from_claims({"groups": ["x"]}, "groups", {"x": " Support_Lead "}) is (
        Role.SUPPORT_LEAD)


def test_a_mapping_to_an_unknown_role_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="'superuser', which is not a role"):
        role_from_claims({"groups": ["x"]}, "groups", {"x": "superuser"})
    # Unused bad entries do not matter.
    assert role_from_claims({"groups": ["agents"]}, "groups",
                            {**MAPPING, "x": "superuser"}) is Role.AGENT


def test_claim_values_ignores_non_strings_and_blanks() -> None:
    assert claim_values({"g": ["a", 1, None, " b ", ""]}, "g") == ["a", "b"]
    assert claim_values({"g": "a,,b"}, "g") == ["a", "b"]


def test_username_prefers_email() -> None:
    assert username_from_claims({"email": " Lee@Corp.Example ", "sub": "123"}) == (
        "lee@corp.example")
    assert username_from_claims({"preferred_username": "lee", "sub": "123"}) == "lee"
    assert username_from_claims({"sub": "123"}) == "123"
    assert username_from_claims({}) == "oidc-user"


# -- dev override -------------------------------------------------------------------------------


def test_dev_role_unset_is_none() -> None:
    assert dev_role({}) is None
    assert dev_role({"LINKER_DEV_ROLE": "  "}) is None


@pytest.mark.parametrize("development", ["development", "DEVELOPMENT", " development "])
def test_dev_role_signs_in_only_in_development(development: str) -> None:
    env = {"LINKER_DEV_ROLE": "Support_Lead", "LINKER_ENV": development}
    assert dev_role(env) is Role.SUPPORT_LEAD


@pytest.mark.parametrize("environment", ["production", "PRODUCTION", "prod", "staging", "test",
                                         "dev", "developments"])
def test_dev_role_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(DevRoleRefused, match=f"LINKER_ENV is '{environment.lower()}'; it works "
                       "only with LINKER_ENV=development"):
        dev_role({"LINKER_DEV_ROLE": "admin", "LINKER_ENV": environment})


def test_dev_role_is_refused_when_the_environment_is_unset() -> None:
    with pytest.raises(DevRoleRefused, match="LINKER_ENV is not set"):
        dev_role({"LINKER_DEV_ROLE": "admin"})


def test_dev_role_must_name_a_role() -> None:
    with pytest.raises(DevRoleRefused, match="'root' is not a role"):
        dev_role({"LINKER_DEV_ROLE": "root", "LINKER_ENV": "development"})


# -- pages per role -----------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "pages"), [
    (Role.ADMIN, ["health", "workbench", "integrations", "autolinking", "debugger", "coverage",
                  "audit"]),
    (Role.DEVELOPER, ["health", "integrations", "debugger"]),
    (Role.AGENT, ["health", "workbench"]),
    (Role.SUPPORT_LEAD, ["health", "workbench", "coverage", "audit"]),
])
def test_pages_per_role(role: Role, pages: list[str]) -> None:
    assert [p.key for p in pages_for(role)] == pages


def test_every_role_that_sees_a_page_passes_its_guard() -> None:
    for page in PAGES:
        for role in page.roles:
            assert Actor("x", role).can(page.permission), (page.key, role)


# -- OIDC settings ------------------------------------------------------------------------------


def test_no_auth_section_means_no_oidc() -> None:
    assert oidc_config({}) is None
    assert oidc_config({"auth": {"redirect_uri": "x", "cookie_secret": "y"}}) is None


def test_default_and_named_providers_with_role_settings() -> None:
    config = oidc_config({
        "auth": {"redirect_uri": "x", "cookie_secret": "y", "client_id": "c",
                 "okta": {"client_id": "o"}, "entra": {"client_id": "e"}},
        "linker": {"role_claim": "roles", "role_map": {"linker-admins": "admin"}},
    })
    assert config is not None
    assert config.providers == (None, "entra", "okta")
    assert config.role_claim == "roles"
    assert config.role_map == {"linker-admins": "admin"}


def test_role_claim_defaults_to_groups() -> None:
    config = oidc_config({"auth": {"client_id": "c"}})
    assert config is not None
    assert (config.role_claim, config.role_map) == ("groups", {})
