"""Errors services raise; each message says what failed and what to do.

The classes are defined in ``linker.core.errors`` (pure rules raise them too); this module is
the name services, pages and the CLI import them by.
"""

from __future__ import annotations

from linker.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied, ServiceError

__all__ = ["Conflict", "InvalidInput", "NotFound", "PermissionDenied", "ServiceError"]
