"""The root of every error Linker raises on purpose; catch ``LinkerError`` to catch them all.

The service family (``ServiceError`` and its leaves) lives here too, so pure rules such as
``linker.core.permissions`` can raise ``PermissionDenied`` without importing a service.
"""

from __future__ import annotations


class LinkerError(Exception):
    """Base of every error Linker raises on purpose; its message says what failed and what to do."""


class ServiceError(LinkerError):
    """Base of every error a service raises on purpose."""


class PermissionDenied(ServiceError):
    """The actor's role may not do this; the message names the role and the action."""


class NotFound(ServiceError):
    """The thing asked for does not exist."""


class Conflict(ServiceError):
    """The change would break a uniqueness rule (e.g. an email held by another profile)."""


class InvalidInput(ServiceError):
    """Bad values. ``fields`` maps a field name to its message, for showing beside the field."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in self.fields.items()))


__all__ = ["Conflict", "InvalidInput", "LinkerError", "NotFound", "PermissionDenied",
           "ServiceError"]
