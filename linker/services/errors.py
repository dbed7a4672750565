"""Errors services raise; each message says what failed and what to do."""

from __future__ import annotations

from linker.core.errors import LinkerError


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


__all__ = ["Conflict", "InvalidInput", "NotFound", "PermissionDenied", "ServiceError"]
