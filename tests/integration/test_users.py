"""UserService on SQLite and PostgreSQL: accounts, roles, disable, login, audit, hashing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from linker.core.permissions import SYSTEM, Actor, Role
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput, NotFound
from linker.services.passwords import MIN_PASSWORD_LENGTH, verify_password
from linker.services.users import UserService
from linker.store.models import AuditEvent, User

PASSWORD = "correct horse battery"


@pytest.fixture
def users(ctx: ServiceContext) -> UserService:
    return UserService(ctx)


def audit_actions(ctx: ServiceContext) -> list[str]:
    with ctx.db.session(readonly=True) as s:
        return list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_create_with_password_stores_only_an_argon2id_hash(users: UserService,
                                                           ctx: ServiceContext) -> None:
    view, generated = users.create(SYSTEM, "Ana", Role.AGENT, PASSWORD)
    assert generated is None
    assert (view.username, view.role, view.disabled) == ("ana", Role.AGENT, False)
    with ctx.db.session(readonly=True) as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "ana"))
    assert stored is not None and stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert verify_password(stored, PASSWORD)
    assert "password_hash" not in view.display()


def test_create_without_password_generates_a_strong_one(users: UserService) -> None:
    view, generated = users.create(SYSTEM, "dev1", "developer")
    assert view.role is Role.DEVELOPER
    assert generated is not None and len(generated) >= 20
    assert users.authenticate("dev1", generated) == Actor("dev1", Role.DEVELOPER)


@pytest.mark.parametrize(("username", "role", "password", "field"), [
    ("ana", "agent", "short", "password"),
    ("ana", "agent", " " * MIN_PASSWORD_LENGTH, "password"),
    ("", "agent", PASSWORD, "username"),
    ("has space", "agent", PASSWORD, "username"),
    ("ana", "superuser", PASSWORD, "role"),
])
def test_create_refuses_bad_input_per_field(users: UserService, username: str, role: str,
                                            password: str, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        users.create(SYSTEM, username, role, password)
    assert field in info.value.fields


def test_duplicate_username_is_a_conflict_ignoring_case(users: UserService) -> None:
    users.create(SYSTEM, "ana", Role.AGENT, PASSWORD)
    with pytest.raises(Conflict, match="already exists"):
        users.create(SYSTEM, "ANA", Role.ADMIN, PASSWORD)


def test_authenticate(users: UserService) -> None:
    users.create(SYSTEM, "ana", Role.AGENT, PASSWORD)
    assert users.authenticate("ana", PASSWORD) == Actor("ana", Role.AGENT)
    assert users.authenticate(" Ana ", PASSWORD) == Actor("ana", Role.AGENT)
    assert users.authenticate("ana", PASSWORD + "x") is None
    assert users.authenticate("nobody", PASSWORD) is None


def test_disable_blocks_login_and_enable_restores_it(users: UserService,
                                                     ctx: ServiceContext) -> None:
    users.create(SYSTEM, "ana", Role.AGENT, PASSWORD)
    assert users.disable(SYSTEM, "ana").disabled
    assert users.authenticate("ana", PASSWORD) is None
    assert not users.enable(SYSTEM, "ana").disabled
    assert users.authenticate("ana", PASSWORD) == Actor("ana", Role.AGENT)
    assert audit_actions(ctx) == ["user.created", "user.disabled", "user.sign_in_failed",
                                  "user.enabled", "user.signed_in"]


def test_change_role_is_audited_with_before_and_after(users: UserService,
                                                      ctx: ServiceContext) -> None:
    users.create(SYSTEM, "ana", Role.AGENT, PASSWORD)
    assert users.change_role(SYSTEM, "ana", "support_lead").role is Role.SUPPORT_LEAD
    assert users.authenticate("ana", PASSWORD) == Actor("ana", Role.SUPPORT_LEAD)
    with ctx.db.session(readonly=True) as s:
        event = s.scalars(select(AuditEvent).where(
            AuditEvent.action == "user.role_changed")).one()
    assert event.before is not None and event.before["role"] == "agent"
    assert event.after is not None and event.after["role"] == "support_lead"
    assert event.actor == "system"
    # the same role again is not a change
    users.change_role(SYSTEM, "ana", "support_lead")
    assert audit_actions(ctx).count("user.role_changed") == 1


def test_last_enabled_admin_cannot_be_disabled_or_demoted(users: UserService) -> None:
    users.create(SYSTEM, "root", Role.ADMIN, PASSWORD)
    with pytest.raises(Conflict, match="last enabled admin"):
        users.disable(SYSTEM, "root")
    with pytest.raises(Conflict, match="last enabled admin"):
        users.change_role(SYSTEM, "root", Role.AGENT)
    users.create(SYSTEM, "root2", Role.ADMIN, PASSWORD)
    assert users.change_role(SYSTEM, "root", Role.AGENT).role is Role.AGENT


def test_unknown_user_is_not_found(users: UserService) -> None:
    with pytest.raises(NotFound, match="no user named"):
        users.disable(SYSTEM, "ghost")


def test_list_is_sorted_and_shows_state(users: UserService) -> None:
    users.create(SYSTEM, "zed", Role.AGENT, PASSWORD)
    users.create(SYSTEM, "amy", Role.DEVELOPER, PASSWORD)
    users.disable(SYSTEM, "zed")
    assert [(u.username, u.role, u.disabled) for u in users.list(SYSTEM)] == [
        ("amy", Role.DEVELOPER, False), ("zed", Role.AGENT, True)]


def test_ensure_user_is_idempotent(users: UserService, ctx: ServiceContext) -> None:
    first = users.ensure_user(SYSTEM, "ana", Role.AGENT, PASSWORD)
    assert first.created and first.generated_password is None
    again = users.ensure_user(SYSTEM, "ana", Role.AGENT, PASSWORD)
    assert (again.created, again.changed) == (False, ())
    moved = users.ensure_user(SYSTEM, "ana", Role.DEVELOPER, PASSWORD + "!")
    assert moved.changed == ("role", "password")
    assert users.authenticate("ana", PASSWORD + "!") == Actor("ana", Role.DEVELOPER)
    kept = users.ensure_user(SYSTEM, "ana", Role.DEVELOPER)
    assert kept.changed == () and kept.generated_password is None
    assert users.authenticate("ana", PASSWORD + "!") is not None
    assert audit_actions(ctx) == ["user.created", "user.role_changed",
                                  "user.password_changed", "user.signed_in", "user.signed_in"]


def test_set_password(users: UserService) -> None:
    users.create(SYSTEM, "ana", Role.AGENT, PASSWORD)
    users.set_password(SYSTEM, "ana", "another long password")
    assert users.authenticate("ana", PASSWORD) is None
    assert users.authenticate("ana", "another long password") is not None


def test_session_actor_reflects_the_account_as_it_is_now(users: UserService,
                                                          ctx: ServiceContext) -> None:
    users.create(SYSTEM, "ana", Role.AGENT, PASSWORD)
    users.create(SYSTEM, "root", Role.ADMIN, PASSWORD)
    assert users.session_actor("ana") == Actor("ana", Role.AGENT)
    assert users.session_actor(" Ana ") == Actor("ana", Role.AGENT)
    users.change_role(SYSTEM, "ana", Role.ADMIN)
    assert users.session_actor("ana") == Actor("ana", Role.ADMIN)
    users.disable(SYSTEM, "ana")
    assert users.session_actor("ana") is None
    users.enable(SYSTEM, "ana")
    assert users.session_actor("ana") == Actor("ana", Role.ADMIN)
    with ctx.db.session() as s:  # removed behind the service's back (no delete method)
        s.delete(s.scalars(select(User).where(User.username == "ana")).one())
    assert users.session_actor("ana") is None
    assert users.session_actor("nobody") is None
    assert users.session_actor("") is None
    # it only reads: no audit event of its own
    assert audit_actions(ctx).count("user.created") == 2
    assert len(audit_actions(ctx)) == 5


def test_session_actor_refuses_a_role_linker_does_not_know(users: UserService,
                                                            ctx: ServiceContext) -> None:
    users.create(SYSTEM, "ana", Role.AGENT, PASSWORD)
    with ctx.db.session() as s:
        s.scalars(select(User).where(User.username == "ana")).one().role = "superuser"
    assert users.session_actor("ana") is None
