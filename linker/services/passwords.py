"""Password hashing for built-in accounts: Argon2id (memory-hard), via argon2-cffi.

Hashes carry their own parameters, so stronger settings later still verify old hashes
(``needs_rehash`` says when one should be upgraded at the next login).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 12
"""Shortest password a person may choose."""

MAX_PASSWORD_LENGTH = 1024
MIN_STRENGTH = 3
"""Lowest zxcvbn score (0-4) a chosen password may have: 3 is "safely unguessable" against
online attacks and slows offline ones; common, breached-style, repeated and keyboard-walk
passwords score 0-2 (zxcvbn ships the frequency lists it checks against)."""

HASHING_SLOTS_ENV = "LINKER_MAX_CONCURRENT_HASHES"
HASHING_WAIT_S = 10.0
"""How long a sign-in waits for a free hashing slot before it is told to try again."""

GENERATED_PASSWORD_BYTES = 18
"""Random bytes in a generated password (24 base64url characters, 144 bits)."""

# RFC 9106 "second recommended option": Argon2id, t=3, m=64 MiB, p=4.
_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4, hash_len=32,
                         salt_len=16, type=Type.ID)


class HashingBusy(RuntimeError):
    """Every hashing slot stayed taken for ``HASHING_WAIT_S``: the caller should retry later."""


class HashingSlots:
    """A cap on concurrent Argon2 computations (each takes 64 MiB), with counters for tests.

    ``LINKER_MAX_CONCURRENT_HASHES`` sets the cap (default: the CPU count, at least 2).
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._free = threading.Semaphore(self.limit)
        self._lock = threading.Lock()
        self.in_use = 0
        self.waiting = 0

    @contextmanager
    def slot(self, timeout_s: float = HASHING_WAIT_S) -> Iterator[None]:
        """Hold one slot for the block; raises HashingBusy when none frees up in time."""
        with self._lock:
            self.waiting += 1
        acquired = self._free.acquire(timeout=timeout_s)
        with self._lock:
            self.waiting -= 1
            if acquired:
                self.in_use += 1
        if not acquired:
            raise HashingBusy("sign-in is busy (too many password checks at once); try again "
                              "in a few seconds")
        try:
            yield
        finally:
            with self._lock:
                self.in_use -= 1
            self._free.release()


def _default_slots() -> int:
    configured = os.environ.get(HASHING_SLOTS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(2, os.cpu_count() or 2)


HASHING = HashingSlots(_default_slots())
"""The process-wide cap every hash and verification goes through."""


def hash_password(password: str) -> str:
    """The Argon2id hash (PHC string, salt and parameters included) of ``password``.

    Waits for a hashing slot (see ``HASHING``); raises HashingBusy when none frees up.
    """
    with HASHING.slot():
        return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; False for a mismatch or a bad hash.

    Waits for a hashing slot (see ``HASHING``); raises HashingBusy when none frees up.
    """
    with HASHING.slot():
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


def password_problem(password: str, user_inputs: Sequence[str] = ()) -> str | None:
    """Why ``password`` may not be used, or None when it may.

    Refused: shorter than 12 characters, only spaces, longer than 1024, or guessable (zxcvbn
    score below ``MIN_STRENGTH``: common or breached-style passwords, repeats, keyboard walks,
    dates, or built from ``user_inputs`` such as the username).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"use at least {MIN_PASSWORD_LENGTH} characters (got {len(password)})"
    if not password.strip():
        return "a password cannot be only spaces"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"use at most {MAX_PASSWORD_LENGTH} characters"
    # zxcvbn's cost grows with length; the first 100 characters decide any real password.
    verdict = zxcvbn(password[:100], user_inputs=[u for u in user_inputs if u])
    if verdict["score"] < MIN_STRENGTH:
        feedback = verdict.get("feedback") or {}
        why = str(feedback.get("warning") or "it is easy to guess").rstrip(".")
        hints = " ".join(str(h) for h in feedback.get("suggestions") or [])
        return (f"this password is too easy to guess ({why}); choose a longer, less common "
                f"one, e.g. several unrelated words{'. ' + hints if hints else ''}")
    return None
