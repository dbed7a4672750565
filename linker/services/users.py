"""Built-in accounts: create, change role, disable/enable, list, and log in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.core.permissions import Actor, Permission, Role
from linker.services.audit import record_audit
from linker.services.context import ServiceContext
from linker.services.errors import Conflict, InvalidInput, NotFound
from linker.services.passwords import (
    dummy_hash,
    generate_password,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from linker.services.signin import (
    ACCOUNT_RULE,
    CLIENT_RULE,
    ThrottleRule,
    account_key,
    client_key,
    count_attempt,
    forgive,
    locked_now,
    record_sign_in_event,
)
from linker.store import users as users_store
from linker.store.models import User

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,99}$")


@dataclass(frozen=True)
class UserView:
    """An account as the console shows it (never the password hash)."""

    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime

    def display(self) -> dict[str, object]:
        """Plain dict for audit events and JSON output."""
        return {"username": self.username, "role": self.role.value, "disabled": self.disabled}


@dataclass(frozen=True)
class EnsuredUser:
    """What ``ensure_user`` did: the account, whether it was created, what changed."""

    user: UserView
    created: bool
    changed: tuple[str, ...]
    generated_password: str | None


def normalize_username(username: str) -> str:
    """The stored form of a username (trimmed, lower-case); raises InvalidInput when invalid."""
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise InvalidInput({"username": (
            "use 1-100 characters: letters, digits, '.', '_', '@' or '-', starting with a letter "
            "or digit"
        )})
    return name


def parse_role(role: Role | str) -> Role:
    """The Role named by ``role``; raises InvalidInput listing the roles otherwise."""
    try:
        return Role(role.strip().lower() if isinstance(role, str) else role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise InvalidInput({"role": f"{role!r} is not a role; choose one of {choices}"}) from None


def _view(user: User) -> UserView:
    return UserView(id=user.id, username=user.username, role=Role(user.role),
                    disabled=user.disabled, created_at=user.created_at)


def _checked_password(password: str, username: str = "") -> str:
    problem = password_problem(password, [username] if username else [])
    if problem:
        raise InvalidInput({"password": problem})
    return password


class UserService:
    """Accounts of the console; every method but ``authenticate`` and ``session_actor`` needs
    MANAGE_USERS."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def create(self, actor: Actor, username: str, role: Role | str,
               password: str | None = None) -> tuple[UserView, str | None]:
        """Create an account. Returns the account and, when no password was given, the
        generated one (shown once, never stored in clear). Conflict when the name is taken."""
        actor.require(Permission.MANAGE_USERS, "create users")
        name = normalize_username(username)
        new_role = parse_role(role)
        generated = None if password is not None else generate_password()
        secret = _checked_password(password, name) if password is not None else str(generated)
        password_hash = hash_password(secret)
        try:
            with self.ctx.db.session() as s:
                if users_store.exists(s, name):
                    raise Conflict(f"a user named {name} already exists; pick another name")
                user = User(username=name, role=new_role.value, password_hash=password_hash,
                            disabled=False, created_at=self.ctx.now())
                users_store.add_user(s, user)
                view = _view(user)
                record_audit(s, actor, "user.created", "user", name, None, view.display())
        except IntegrityError:
            raise Conflict(f"a user named {name} already exists; pick another name") from None
        return view, generated

    def ensure_user(self, actor: Actor, username: str, role: Role | str,
                    password: str | None = None) -> EnsuredUser:
        """Make the account exist with this role (and password, when given); idempotent.

        A missing account is created (with a generated password when none is given); an
        existing one gets the role, and the password when one is given and differs.
        """
        actor.require(Permission.MANAGE_USERS, "create users")
        name = normalize_username(username)
        new_role = parse_role(role)
        if password is not None:
            _checked_password(password, name)
        with self.ctx.db.session() as s:
            exists = users_store.exists(s, name)
        if not exists:
            view, generated = self.create(actor, name, new_role, password)
            return EnsuredUser(view, True, ("created",), generated)
        changed: list[str] = []
        with self.ctx.db.session() as s:
            user = self._load(s, name)
            if user.role != new_role.value:
                changed.append("role")
                self._set_role(s, actor, user, new_role)
            if password is not None and not verify_password(user.password_hash, password):
                changed.append("password")
                user.password_hash = hash_password(password)
                record_audit(s, actor, "user.password_changed", "user", name, None, None)
            view = _view(user)
        return EnsuredUser(view, False, tuple(changed), None)

    def change_role(self, actor: Actor, username: str, role: Role | str) -> UserView:
        """Give the account another role. The last enabled admin cannot lose the role."""
        actor.require(Permission.MANAGE_USERS, "change roles")
        new_role = parse_role(role)
        with self.ctx.db.session() as s:
            user = self._load(s, username)
            if user.role != new_role.value:
                self._set_role(s, actor, user, new_role)
            return _view(user)

    def set_password(self, actor: Actor, username: str, password: str) -> UserView:
        """Replace the account's password (at least 12 characters)."""
        actor.require(Permission.MANAGE_USERS, "change passwords")
        password_hash = hash_password(_checked_password(password, normalize_username(username)))
        with self.ctx.db.session() as s:
            user = self._load(s, username)
            user.password_hash = password_hash
            record_audit(s, actor, "user.password_changed", "user", user.username, None, None)
            return _view(user)

    def disable(self, actor: Actor, username: str) -> UserView:
        """Stop the account from logging in. The last enabled admin cannot be disabled."""
        actor.require(Permission.MANAGE_USERS, "disable users")
        with self.ctx.db.session() as s:
            user = self._load(s, username)
            if not user.disabled:
                if user.role == Role.ADMIN.value:
                    self._keep_an_admin(s, user, "disable")
                before = _view(user).display()
                user.disabled = True
                record_audit(s, actor, "user.disabled", "user", user.username, before,
                             _view(user).display())
            return _view(user)

    def enable(self, actor: Actor, username: str) -> UserView:
        """Let a disabled account log in again."""
        actor.require(Permission.MANAGE_USERS, "enable users")
        with self.ctx.db.session() as s:
            user = self._load(s, username)
            if user.disabled:
                before = _view(user).display()
                user.disabled = False
                record_audit(s, actor, "user.enabled", "user", user.username, before,
                             _view(user).display())
            return _view(user)

    def list(self, actor: Actor) -> list[UserView]:
        """Every account, by username."""
        actor.require(Permission.MANAGE_USERS, "list users")
        with self.ctx.db.session() as s:
            return [_view(u) for u in users_store.all_by_name(s)]

    def authenticate(self, username: str, password: str, *, client: str = "") -> Actor | None:
        """The Actor for valid credentials of an enabled account, else None.

        Throttled per account and per ``client`` (its address; empty when unknown) with
        back-off, see ``linker.services.signin``: raises TooManyAttempts ("Too many attempts;
        try again in N s") without checking the password while either is locked, and
        HashingBusy when too many checks run at once. Audits success, failure and lock-out.
        An unknown username is checked against a dummy hash so it takes as long as a real check.
        """
        name = username.strip().lower()
        keys: dict[str, ThrottleRule] = {account_key(name): ACCOUNT_RULE}
        client_id = client_key(client)
        if client_id is not None:
            keys[client_id] = CLIENT_RULE
        details = {"client": client.strip()[:100]} if client.strip() else {}
        with self.ctx.db.session() as s:
            count_attempt(s, keys, self.ctx.now())
        with self.ctx.db.session(readonly=True) as s:
            user = users_store.user_named(s, name)
            stored = None if user is None else (user.password_hash, user.disabled, user.role)
        if stored is None:
            verify_password(dummy_hash(), password)
            ok, role = False, "none"
        else:
            ok = verify_password(stored[0], password) and not stored[1]
            role = stored[2]
        with self.ctx.db.session() as s:
            now = self.ctx.now()
            if not ok:
                reason = ("unknown account" if stored is None else
                          "account disabled" if stored[1] else "wrong password")
                record_sign_in_event(s, now, name, role, "user.sign_in_failed",
                                     {**details, "reason": reason})
                if locked_now(s, account_key(name), now):
                    record_sign_in_event(s, now, name, role, "user.locked_out", details)
                return None
            forgive(s, account_key(name), client_id)
            record_sign_in_event(s, now, name, role, "user.signed_in", details)
            if stored is not None and needs_rehash(stored[0]):
                user = users_store.user_named(s, name)
                if user is not None:
                    user.password_hash = hash_password(password)
            return Actor(name, Role(role))

    def sign_out(self, actor: Actor, *, client: str = "") -> None:
        """Audit that ``actor`` signed out of the console (any sign-in method)."""
        details = {"client": client.strip()[:100]} if client.strip() else {}
        with self.ctx.db.session() as s:
            record_sign_in_event(s, self.ctx.now(), actor.username, actor.role.value,
                                 "user.signed_out", details)

    def session_actor(self, username: str) -> Actor | None:
        """The account's Actor as it is now (current role), or None when the account is
        disabled, gone or holds a role Linker does not know.

        For sessions that signed in with ``authenticate`` earlier: the dashboard calls this on
        every run, so disabling an account or changing its role applies to open sessions at
        once. No password is checked, so only pass a username that was authenticated. One
        read-only query on the unique username index.
        """
        name = username.strip().lower()
        with self.ctx.db.session(readonly=True) as s:
            row = users_store.role_and_disabled(s, name)
        if row is None or row[1]:
            return None
        try:
            return Actor(name, Role(row[0]))
        except ValueError:
            return None

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _load(s: Session, username: str) -> User:
        user = users_store.user_named(s, username.strip().lower())
        if user is None:
            raise NotFound(f"no user named {username.strip()!r}; check the name with "
                           "'linker users list'")
        return user

    def _set_role(self, s: Session, actor: Actor, user: User, role: Role) -> None:
        if user.role == Role.ADMIN.value and not user.disabled:
            self._keep_an_admin(s, user, "take the admin role from")
        before = _view(user).display()
        user.role = role.value
        record_audit(s, actor, "user.role_changed", "user", user.username, before,
                     _view(user).display())

    @staticmethod
    def _keep_an_admin(s: Session, user: User, what: str) -> None:
        admins = users_store.other_enabled_admins(s, Role.ADMIN.value, user.id)
        if not admins:
            raise Conflict(f"cannot {what} {user.username}: it is the last enabled admin; "
                           "make another user admin first")
