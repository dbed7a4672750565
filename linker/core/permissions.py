"""Roles, actors and the permission table every service checks (product.md, "Who uses it")."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from linker.core.errors import PermissionDenied


class Role(StrEnum):
    """The four roles of the console."""

    ADMIN = "admin"
    DEVELOPER = "developer"
    AGENT = "agent"
    SUPPORT_LEAD = "support_lead"


class Permission(StrEnum):
    """What a service call needs."""

    VIEW_CUSTOMERS = "view_customers"
    EDIT_CUSTOMERS = "edit_customers"          # create, import
    LINK = "link"                              # search, link, unlink, refresh, clear suppression
    VIEW_INTEGRATIONS = "view_integrations"    # settings without secrets
    MANAGE_INTEGRATIONS = "manage_integrations"  # create, edit, (de)activate, delete, auto-link
    TEST_INTEGRATIONS = "test_integrations"    # test connection, debugger, conformance, replay
    VIEW_EXCHANGES = "view_exchanges"         # one exchange behind a result (workbench, why)
    READ_EXCHANGE_LOG = "read_exchange_log"    # the debugger's filtered, paginated log; cURL
    REPLAY_EXCHANGES = "replay_exchanges"      # send a stored request again, now
    RUN_CONFORMANCE = "run_conformance"        # run and list conformance report cards
    EXPORT_EXCHANGES = "export_exchanges"      # the filtered log as redacted JSONL
    VIEW_REPORTS = "view_reports"              # coverage, health, outcomes
    VIEW_HEALTH = "view_health"                # the health overview (every role)
    VIEW_COVERAGE = "view_coverage"            # the coverage page and its worklists
    VIEW_AUDIT = "view_audit"
    RUN_BACKFILL = "run_backfill"
    MANAGE_USERS = "manage_users"


_ALL = frozenset(Permission)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: _ALL,
    Role.DEVELOPER: frozenset({
        Permission.VIEW_CUSTOMERS, Permission.VIEW_INTEGRATIONS, Permission.TEST_INTEGRATIONS,
        Permission.VIEW_EXCHANGES, Permission.VIEW_REPORTS, Permission.READ_EXCHANGE_LOG,
        Permission.REPLAY_EXCHANGES, Permission.RUN_CONFORMANCE, Permission.EXPORT_EXCHANGES,
        Permission.VIEW_HEALTH,
    }),
    Role.AGENT: frozenset({
        Permission.VIEW_CUSTOMERS, Permission.EDIT_CUSTOMERS, Permission.LINK,
        Permission.VIEW_HEALTH,
    }),
    Role.SUPPORT_LEAD: frozenset({
        Permission.VIEW_CUSTOMERS, Permission.VIEW_INTEGRATIONS, Permission.VIEW_REPORTS,
        Permission.VIEW_AUDIT, Permission.VIEW_EXCHANGES, Permission.VIEW_HEALTH,
        Permission.VIEW_COVERAGE,
    }),
}


@dataclass(frozen=True)
class Actor:
    """Who is calling a service: a username and a role."""

    username: str
    role: Role

    def can(self, permission: Permission) -> bool:
        """True when the actor's role grants ``permission``."""
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission, action: str) -> None:
        """Raise PermissionDenied unless the role grants ``permission``."""
        if not self.can(permission):
            raise PermissionDenied(
                f"{self.username} ({self.role.value}) may not {action}; "
                "ask an admin for a role that allows it"
            )


SYSTEM = Actor("system", Role.ADMIN)
"""The actor of background work started by the product itself (CLI maintenance, demo seed)."""
