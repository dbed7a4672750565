"""Password hashing for built-in accounts: Argon2id (memory-hard), via argon2-cffi.

Hashes carry their own parameters, so stronger settings later still verify old hashes
(``needs_rehash`` says when one should be upgraded at the next login).
"""

from __future__ import annotations

import secrets
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 12
"""Shortest password a person may choose."""

GENERATED_PASSWORD_BYTES = 18
"""Random bytes in a generated password (24 base64url characters, 144 bits)."""

# RFC 9106 "second recommended option": Argon2id, t=3, m=64 MiB, p=4.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4, hash_len=32,
                         salt_len=16, type=Type.ID)


def hash_password(password: str) -> str:
    """The Argon2id hash (PHC string, salt and parameters included) of ``password``."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; False for a mismatch or a bad hash."""
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than the current ones."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """A hash of a random password, verified against when a username does not exist.

    Checking a password against it costs the same as a real check, so login time does not tell
    whether an account exists.
    """
    return hash_password(secrets.token_urlsafe(GENERATED_PASSWORD_BYTES))


def generate_password() -> str:
    """A strong random password (24 URL-safe characters) for a new account."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be used, or None when it may."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"use at least {MIN_PASSWORD_LENGTH} characters (got {len(password)})"
    if not password.strip():
        return "a password cannot be only spaces"
    if len(password) > 1024:
        return "use at most 1024 characters"
    return None
