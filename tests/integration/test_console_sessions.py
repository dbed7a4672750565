"""Reload-proof console sessions: issued after sign-in, resolved while valid, never stored in
clear, ended by expiry, revocation or a disabled account."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from linker.core.permissions import SYSTEM, Actor, Role
from linker.services.console_sessions import SESSION_TTL, ConsoleSessionService
from linker.services.context import ServiceContext
from linker.services.users import UserService
from linker.store.models import ConsoleSession

PASSWORD = "correct horse battery staple 42"


def signed_in(ctx: ServiceContext) -> tuple[ConsoleSessionService, str]:
    UserService(ctx).create(SYSTEM, "ada", "agent", password=PASSWORD)
    sessions = ConsoleSessionService(ctx)
    return sessions, sessions.issue(Actor("ada", Role.AGENT))


def test_a_token_resolves_to_the_account_as_it_is_now(ctx: ServiceContext) -> None:
    sessions, token = signed_in(ctx)
    assert sessions.resolve(token) == Actor("ada", Role.AGENT)
    UserService(ctx).change_role(SYSTEM, "ada", "support_lead")
    assert sessions.resolve(token) == Actor("ada", Role.SUPPORT_LEAD)


def test_only_the_hash_of_the_token_is_stored(ctx: ServiceContext) -> None:
    _, token = signed_in(ctx)
    with ctx.db.session(readonly=True) as s:
        stored = s.scalars(select(ConsoleSession)).all()
    assert [row.token_hash for row in stored] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in {row.token_hash for row in stored}


def test_expired_revoked_unknown_and_disabled_do_not_resolve(ctx: ServiceContext) -> None:
    sessions, token = signed_in(ctx)
    assert sessions.resolve("not-a-token") is None
    assert sessions.resolve("") is None
    start = datetime.now(UTC)
    ctx.now = lambda: start + SESSION_TTL + timedelta(seconds=1)
    assert sessions.resolve(token) is None
    ctx.now = lambda: datetime.now(UTC)
    assert sessions.resolve(token) is not None
    UserService(ctx).disable(SYSTEM, "ada")
    assert sessions.resolve(token) is None
    UserService(ctx).enable(SYSTEM, "ada")
    sessions.revoke(token)
    assert sessions.resolve(token) is None
