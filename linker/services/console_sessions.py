"""Console sessions that survive a browser reload, for a bounded time.

After a password sign-in the dashboard keeps a random token in a browser cookie; the database
keeps only its SHA-256 with the username and an expiry. A reload presents the cookie, and
``resolve`` gives the account's current Actor while the session is neither expired nor revoked
and the account is enabled. No password or secret ever goes into a URL or a log.

    token = svc.console_sessions.issue(actor)      # after authenticate() succeeded
    actor = svc.console_sessions.resolve(token)    # on a new browser session, or None
    svc.console_sessions.revoke(token)             # on sign-out
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from linker.core.permissions import Actor
from linker.services.context import ServiceContext
from linker.services.users import UserService
from linker.store import console_sessions as sessions_store

SESSION_TTL = timedelta(hours=8)
"""How long a sign-in survives reloads (a working day); then the user signs in again."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleSessionService:
    """Issues, resolves and revokes reload-proof console sessions."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def issue(self, actor: Actor) -> str:
        """A new token for ``actor`` (who has just authenticated), valid for ``SESSION_TTL``."""
        token = secrets.token_urlsafe(32)
        now = self.ctx.now()
        with self.ctx.db.session() as s:
            sessions_store.add_session(s, _digest(token), actor.username, now,
                                       now + SESSION_TTL)
        return token

    def resolve(self, token: str) -> Actor | None:
        """The account behind ``token`` as it is now, or None when the token is unknown,
        expired or revoked, or the account was disabled or removed."""
        if not token or len(token) > 200:
            return None
        with self.ctx.db.session(readonly=True) as s:
            found = sessions_store.session_of(s, _digest(token))
            if found is None or found.revoked_at is not None or found.expires_at <= self.ctx.now():
                return None
            username = found.username
        return UserService(self.ctx).session_actor(username)

    def revoke(self, token: str) -> None:
        """End the session of ``token`` (sign-out); unknown tokens are ignored."""
        if not token:
            return
        with self.ctx.db.session() as s:
            sessions_store.revoke_session(s, _digest(token), self.ctx.now())
