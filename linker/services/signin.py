"""Sign-in defences: throttling with back-off kept in the database, and sign-in audit events.

Every attempt is counted *before* its password is checked, per account (``account:<name>``)
and per client (``client:<address>``, when the address is known), in one short transaction:

- an account (client) has ``free`` attempts; the attempt that reaches it locks the key for
  ``base_s`` seconds, and each later failure doubles the lock, up to ``max_s``;
- while a key is locked, attempts are refused at once (no password hashing, not counted) with
  ``TooManyAttempts`` ("Too many attempts; try again in N s");
- a successful sign-in clears the account's count and takes its attempt back from the client;
- counts are forgotten after ``forget_s`` seconds without a failure.

Because attempts are counted before hashing, 30 parallel guesses cannot slip past the check
together: the ones after the limit are refused without costing an Argon2 computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from linker.services.errors import ServiceError
from linker.store import audit as audit_store
from linker.store import signin_throttle as throttle_store
from linker.store.models import SignInThrottle


class TooManyAttempts(ServiceError):
    """Sign-in refused without checking the password: too many recent attempts."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"Too many attempts; try again in {retry_after_s} s")


@dataclass(frozen=True)
class ThrottleRule:
    """How many attempts a key gets, and the back-off after them (seconds)."""

    free: int
    base_s: float = 30.0
    max_s: float = 900.0
    forget_s: float = 900.0

    def lock_for(self, failures: int) -> float:
        """Seconds to lock after ``failures`` uncleared attempts (0 below the limit)."""
        if failures < self.free:
            return 0.0
        return float(min(self.max_s, self.base_s * 2 ** min(failures - self.free, 32)))


ACCOUNT_RULE = ThrottleRule(free=5)
CLIENT_RULE = ThrottleRule(free=20)


def account_key(username: str) -> str:
    """The throttle key of an account name (as typed, normalised)."""
    return f"account:{username.strip().lower()[:150]}"


def client_key(client: str) -> str | None:
    """The throttle key of a client address, or None when the address is unknown."""
    client = client.strip()
    return f"client:{client[:150]}" if client else None


def _retry_after(row: SignInThrottle | None, now: datetime) -> int:
    if row is None or row.locked_until is None or row.locked_until <= now:
        return 0
    return max(1, math.ceil((row.locked_until - now).total_seconds()))


def count_attempt(session: Session, keys: dict[str, ThrottleRule], now: datetime) -> None:
    """Refuse (TooManyAttempts) when a key is locked, else count the attempt on every key
    and lock those that reached their limit. Run it in its own short write transaction."""
    rows = {key: throttle_store.locked_row(session, key, now) for key in sorted(keys)}
    wait = max(_retry_after(row, now) for row in rows.values())
    if wait:
        raise TooManyAttempts(wait)
    for key, rule in keys.items():
        row = rows[key]
        if now - row.last_failure_at > timedelta(seconds=rule.forget_s):
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        lock = rule.lock_for(row.failures)
        row.locked_until = now + timedelta(seconds=lock) if lock else None
    session.flush()


def locked_now(session: Session, key: str, now: datetime) -> bool:
    """True when ``key`` is locked at ``now``."""
    return _retry_after(throttle_store.row_of(session, key), now) > 0


def forgive(session: Session, account: str, client: str | None) -> None:
    """After a successful sign-in: clear the account's count, take one attempt back from the
    client's (its lock, if any, stays until it runs out)."""
    row = throttle_store.row_of(session, account)
    if row is not None:
        throttle_store.delete_row(session, row)
    if client is not None:
        row = throttle_store.row_of(session, client)
        if row is not None and row.failures > 0:
            row.failures -= 1


def record_sign_in_event(session: Session, at: datetime, username: str, role: str, action: str,
                         details: dict[str, Any] | None = None) -> None:
    """An audit event about signing in or out (``user.signed_in``, ``user.sign_in_failed``,
    ``user.locked_out``, ``user.signed_out``); never carries the password."""
    name = username.strip().lower()[:100]
    audit_store.add_event(session, at=at, actor=name or "(empty)", role=role[:20] or "none",
                          action=action, entity_type="user", entity_id=name or "(empty)",
                          before=None, after=details or None)

