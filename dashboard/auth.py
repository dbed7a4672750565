"""Who is signed in, with which role, and which pages that role may open.

The top half is pure (no Streamlit): ``role_from_claims`` maps an OIDC claim to a role,
``dev_role`` reads the development override, ``pages_for`` lists the pages of a role, and
``oidc_config`` reads the ``[auth]`` / ``[linker]`` secrets. The bottom half reads and writes
the Streamlit session.

Session keys the frame reads (tests sign in by setting them before ``at.run()``):

- ``auth_username``: the signed-in username (``str``)
- ``auth_role``: the role value, one of ``admin``, ``developer``, ``agent``, ``support_lead``
- ``auth_source``: how the user signed in: ``password`` or ``dev``. A ``password`` session is
  re-checked against its account on every run (disabled or removed: signed out; role changed:
  the new role applies); ``dev`` sessions and sessions without a source are not
- ``auth_signed_out``: set by Sign out, so the dev override does not sign the session in again

OIDC users (``st.login``) are not stored in the session: their role is computed from
``st.user`` on every run, so a group change at the identity provider applies at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from linker.core.permissions import Actor, Permission, Role

SESSION_USERNAME = "auth_username"
SESSION_ROLE = "auth_role"
SESSION_SOURCE = "auth_source"
SESSION_SIGNED_OUT = "auth_signed_out"

SOURCE_PASSWORD = "password"
"""``auth_source`` of a built-in account's sign-in (re-checked against the account each run)."""
SOURCE_DEV = "dev"

DEV_ROLE_ENV = "LINKER_DEV_ROLE"
"""Environment variable: sign every session in with this role (only with LINKER_ENV=development)."""
DEV_USERNAME = "dev"

ROLE_PRIORITY: tuple[Role, ...] = (Role.ADMIN, Role.DEVELOPER, Role.SUPPORT_LEAD, Role.AGENT)
"""Highest privilege first: when a user's claim maps to several roles, the first one wins."""

DEFAULT_ROLE_CLAIM = "groups"
USERNAME_CLAIMS = ("email", "preferred_username", "name", "sub")


# -- pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageSpec:
    """A page of the console: its script in ``pages/``, title, icon, the roles that see it in
    the navigation, and the permission its guard checks."""

    key: str
    script: str
    title: str
    icon: str
    roles: frozenset[Role]
    permission: Permission


PAGES: tuple[PageSpec, ...] = (
    PageSpec("health", "health.py", "Health", ":material/monitor_heart:", frozenset(Role),
             Permission.VIEW_HEALTH),
    PageSpec("workbench", "workbench.py", "Link workbench", ":material/link:",
             frozenset({Role.AGENT, Role.ADMIN, Role.SUPPORT_LEAD}), Permission.VIEW_CUSTOMERS),
    PageSpec("integrations", "integrations.py", "Integrations", ":material/hub:",
             frozenset({Role.ADMIN, Role.DEVELOPER}), Permission.VIEW_INTEGRATIONS),
    PageSpec("autolinking", "autolinking.py", "Auto-linking", ":material/join_inner:",
             frozenset({Role.ADMIN}), Permission.MANAGE_INTEGRATIONS),
    PageSpec("debugger", "debugger.py", "Adaptor debugger", ":material/bug_report:",
             frozenset({Role.ADMIN, Role.DEVELOPER}), Permission.TEST_INTEGRATIONS),
    PageSpec("coverage", "coverage.py", "Coverage", ":material/donut_large:",
             frozenset({Role.SUPPORT_LEAD, Role.ADMIN}), Permission.VIEW_COVERAGE),
    PageSpec("audit", "audit.py", "Audit log", ":material/history:",
             frozenset({Role.SUPPORT_LEAD, Role.ADMIN}), Permission.VIEW_AUDIT),
)
"""Every page, in navigation order; the first is every role's landing page. Health: every
role; Link workbench: agent, admin, support lead (read-only); Integrations: admin (developer
read-only); Auto-linking: admin; Adaptor debugger: admin, developer; Coverage and Audit log:
support lead, admin."""

PAGES_BY_KEY = {page.key: page for page in PAGES}


def pages_for(role: Role) -> list[PageSpec]:
    """The pages ``role`` may open, in navigation order."""
    return [page for page in PAGES if role in page.roles]


# -- OIDC claims → role -------------------------------------------------------------------


def claim_values(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The values of ``claim`` as a list of trimmed strings.

    ``claim`` may be a dotted path into nested objects (``realm_access.roles``). A list gives
    its string items, a string is split on commas, anything else gives nothing.
    """
    value: Any = claims
    for part in claim.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return []
        value = value[part]
    items: Iterable[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        return []
    return [item.strip() for item in items if isinstance(item, str) and item.strip()]


def role_from_claims(claims: Mapping[str, Any], claim: str,
                     mapping: Mapping[str, str]) -> Role | None:
    """The role of an OIDC user: every value of ``claim`` that ``mapping`` knows maps to a role,
    and the highest-privilege one wins (admin > developer > support_lead > agent).

    Values are compared exactly after trimming. None when nothing matches (refuse sign-in).
    Raises ValueError when ``mapping`` names something that is not a role (a configuration
    error an admin must fix).
    """
    roles: set[Role] = set()
    for value in claim_values(claims, claim):
        target = mapping.get(value)
        if target is None:
            continue
        try:
            roles.add(Role(str(target).strip().lower()))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise ValueError(f"[linker.role_map] maps {value!r} to {target!r}, which is not a "
                             f"role; use one of {known}") from None
    return next((role for role in ROLE_PRIORITY if role in roles), None)


def username_from_claims(claims: Mapping[str, Any]) -> str:
    """The name to record for an OIDC user: email, preferred_username, name or sub."""
    for key in USERNAME_CLAIMS:
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return "oidc-user"


@dataclass(frozen=True)
class OidcConfig:
    """OIDC sign-in settings read from secrets: providers to offer, the claim and the map."""

    providers: tuple[str | None, ...]
    """``None`` is the default provider (``[auth]`` itself); names are ``[auth.<name>]``."""
    role_claim: str
    role_map: dict[str, str]


def oidc_config(secrets: Mapping[str, Any]) -> OidcConfig | None:
    """The OIDC settings when ``[auth]`` is configured, else None.

    ``[auth]`` with ``client_id`` is the default provider; each ``[auth.<name>]`` table is a
    named one. ``[linker] role_claim`` (default ``groups``) and ``[linker.role_map]`` (claim
    value → role) say who gets which role.
    """
    auth = secrets.get("auth")
    if not isinstance(auth, Mapping):
        return None
    providers: list[str | None] = []
    if "client_id" in auth:
        providers.append(None)
    providers += sorted(str(k) for k, v in auth.items() if isinstance(v, Mapping))
    if not providers:
        return None
    linker = secrets.get("linker")
    linker = linker if isinstance(linker, Mapping) else {}
    role_map = linker.get("role_map")
    return OidcConfig(
        providers=tuple(providers),
        role_claim=str(linker.get("role_claim") or DEFAULT_ROLE_CLAIM),
        role_map={str(k): str(v) for k, v in (role_map or {}).items()},
    )


# -- development override -------------------------------------------------------------------


class DevRoleRefused(ValueError):
    """LINKER_DEV_ROLE was set outside development (LINKER_ENV is not ``development``) or
    names no role."""


DEV_ENVIRONMENT = "development"
"""The only ``LINKER_ENV`` value under which the development override signs anyone in."""


def dev_role(env: Mapping[str, str] | None = None) -> Role | None:
    """The role of the development override ``LINKER_DEV_ROLE``, or None when it is unset.

    The override works only when ``LINKER_ENV=development`` is set explicitly: anything else
    (unset, ``prod``, ``staging``, ``production``, ...) raises DevRoleRefused, because the
    override would let anyone in. Also raises it when the value is not a role.
    """
    env = os.environ if env is None else env
    value = env.get(DEV_ROLE_ENV, "").strip().lower()
    if not value:
        return None
    environment = env.get("LINKER_ENV", "").strip().lower()
    if environment != DEV_ENVIRONMENT:
        shown = f"is {environment!r}" if environment else "is not set"
        raise DevRoleRefused(f"{DEV_ROLE_ENV} is ignored because LINKER_ENV {shown}; it "
                             f"works only with LINKER_ENV={DEV_ENVIRONMENT}. Sign in with an "
                             "account (and unset the variable)")
    try:
        return Role(value)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise DevRoleRefused(f"{DEV_ROLE_ENV}={value!r} is not a role; use one of {known}"
                             ) from None


# -- the session ----------------------------------------------------------------------------


def session_actor() -> Actor | None:
    """The user signed in with a password or the dev override in this session, or None."""
    username = st.session_state.get(SESSION_USERNAME)
    role = st.session_state.get(SESSION_ROLE)
    if not username or not role:
        return None
    try:
        return Actor(str(username), Role(str(role)))
    except ValueError:
        sign_out_session()
        return None


def session_source() -> str | None:
    """How this session's user signed in (``password``, ``dev``), or None when unknown."""
    source = st.session_state.get(SESSION_SOURCE)
    return str(source) if source else None


def sign_in(actor: Actor, source: str) -> None:
    """Remember ``actor`` as this session's user (``source``: password or dev)."""
    st.session_state[SESSION_USERNAME] = actor.username
    st.session_state[SESSION_ROLE] = actor.role.value
    st.session_state[SESSION_SOURCE] = source
    st.session_state.pop(SESSION_SIGNED_OUT, None)


def sign_out_session() -> None:
    """Forget the session's user and everything the pages kept in the session."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state[SESSION_SIGNED_OUT] = True


_CURRENT = "_auth_current_actor"


def set_current_actor(actor: Actor | None) -> None:
    """Called by the frame once per run with whoever is signed in (any sign-in method)."""
    st.session_state[_CURRENT] = actor


def current_actor() -> Actor | None:
    """The actor the frame signed in for this run (password, OIDC or dev), or None."""
    actor = st.session_state.get(_CURRENT)
    return actor if isinstance(actor, Actor) else session_actor()


def require(permission: Permission, *, page: str | None = None) -> Actor:
    """Page guard: the signed-in actor when it has ``permission`` (and, with ``page``, the
    role may open that page); otherwise say why and stop the page."""
    actor = current_actor()
    if actor is None:
        st.warning("Sign in to use the Linker console.")
        st.stop()
    spec = PAGES_BY_KEY.get(page) if page else None
    if not actor.can(permission) or (spec is not None and actor.role not in spec.roles):
        what = spec.title if spec else "this page"
        st.error(f"{actor.username} ({actor.role.value}) may not open {what}; "
                 "ask an admin for a role that allows it.")
        st.stop()
    return actor
