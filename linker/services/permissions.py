"""Moved to ``linker.core.permissions`` (issue 7); kept while branches written against the old
path are merged. Import from ``linker.core.permissions``; delete this module once nothing does."""

from __future__ import annotations

from linker.core.errors import PermissionDenied
from linker.core.permissions import ROLE_PERMISSIONS, SYSTEM, Actor, Permission, Role

__all__ = ["ROLE_PERMISSIONS", "SYSTEM", "Actor", "Permission", "PermissionDenied", "Role"]
