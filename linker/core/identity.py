"""Normalisation of contact data: emails (trimmed, lower-case) and phones (E.164)."""

from __future__ import annotations

import functools
from enum import StrEnum

import phonenumbers

from linker.core.errors import LinkerError
from linker.safetext import forbidden_character, nfkc

DEFAULT_REGION = "US"


class PhoneType(StrEnum):
    """Phone types of the contract; a phone without a type is OTHER."""

    MOBILE = "MOBILE"
    HOME = "HOME"
    OFFICE = "OFFICE"
    OTHER = "OTHER"


class InvalidContact(LinkerError, ValueError):
    """An email or phone value that cannot be normalised; the message says why."""


def normalize_email(value: str) -> str:
    """Trim and lower-case an email; raises InvalidContact when it is not an address."""
    if not isinstance(value, str):
        raise InvalidContact(f"{value!r} is not an email address (expected text)")
    hidden = forbidden_character(value.strip(), multiline=True)  # whitespace: below
    if hidden:
        raise InvalidContact(f"an email address may not contain {hidden}")
    # NFKC, so full-width and other look-alike forms become one address.
    email = nfkc(value).strip().lower()
    if not email:
        raise InvalidContact("an empty value is not an email address")
    if any(ch.isspace() for ch in email):
        raise InvalidContact(f"{value!r} is not an email address (it contains whitespace)")
    if email.count("@") != 1:
        raise InvalidContact(
            f"{value!r} is not an email address (it needs exactly one '@': name@domain.tld)"
        )
    local, _, domain = email.partition("@")
    labels = domain.split(".")
    if not local or len(labels) < 2 or not all(labels):
        raise InvalidContact(f"{value!r} is not an email address (expected name@domain.tld)")
    return email


def normalize_phone(value: str, region: str = DEFAULT_REGION) -> str:
    """Return a phone number in E.164; raises InvalidContact when it is not a valid number.

    Numbers without a leading ``+`` are read in ``region`` (default US).
    """
    if not isinstance(value, str):
        raise InvalidContact(f"{value!r} is not a phone number (expected text)")
    return _normalize_phone(value, region)


@functools.lru_cache(maxsize=16384)
def _normalize_phone(value: str, region: str) -> str:
    """``normalize_phone`` of a string (a backfill normalises each number several times;
    phonenumbers' parse is its writer's largest pure-Python cost). Failures are not cached."""
    text = value.strip()
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region.upper())
    except phonenumbers.NumberParseException as exc:
        raise InvalidContact(f"{value!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidContact(
            f"{value!r} is not a valid phone number (give the country code, e.g. +14155552671)"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def try_normalize_phone(value: str, region: str = DEFAULT_REGION) -> str | None:
    """E.164 form of ``value``, or None when it is not a valid number."""
    try:
        return normalize_phone(value, region)
    except InvalidContact:
        return None


def try_normalize_email(value: str) -> str | None:
    """Normalised email, or None when ``value`` is not an address."""
    try:
        return normalize_email(value)
    except InvalidContact:
        return None


def parse_phone_type(value: object) -> PhoneType | None:
    """The PhoneType named by ``value`` (case-insensitive), or None when it names none."""
    if not isinstance(value, str):
        return None
    try:
        return PhoneType(value.strip().upper())
    except ValueError:
        return None
