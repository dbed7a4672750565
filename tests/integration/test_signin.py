"""Sign-in defences: throttling with back-off in the database, audit events, hashing cap."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from linker.core.permissions import Actor, Role
from linker.services import passwords, users
from linker.services.context import ServiceContext
from linker.services.signin import ACCOUNT_RULE, CLIENT_RULE, TooManyAttempts
from linker.services.users import UserService
from linker.store.database import Database
from linker.store.models import AuditEvent, User
from tests.integration.world import race

PASSWORD = "correct horse battery"
START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class Clock:
    """A settable clock for ``ctx.now``."""

    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock(ctx: ServiceContext) -> Clock:
    clock = Clock()
    ctx.now = clock
    return clock


@pytest.fixture
def service(ctx: ServiceContext) -> UserService:
    with ctx.db.session() as s:  # one hash for the whole module's accounts
        s.add(User(username="ana", role=Role.AGENT.value, password_hash=ANA_HASH,
                   created_at=START))
    return UserService(ctx)


ANA_HASH = passwords.hash_password(PASSWORD)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check the user service makes (real checks, counted)."""
    calls: list[str] = []
    real: Callable[[str, str], bool] = passwords.verify_password

    def counted(password_hash: str, password: str) -> bool:
        calls.append(password)
        return real(password_hash, password)

    monkeypatch.setattr(users, "verify_password", counted)
    return calls


def actions(ctx: ServiceContext) -> list[tuple[str, str]]:
    with ctx.db.session(readonly=True) as s:
        return [(e.action, e.actor) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def test_wrong_passwords_lock_the_account_with_doubling_back_off(
        service: UserService, ctx: ServiceContext, clock: Clock,
        verifications: list[str]) -> None:
    for i in range(ACCOUNT_RULE.free):
        assert service.authenticate("ana", f"wrong guess {i}") is None
    with pytest.raises(TooManyAttempts, match=r"^Too many attempts; try again in 30 s$"):
        service.authenticate("ana", PASSWORD)  # even the right password, and not checked
    assert len(verifications) == ACCOUNT_RULE.free
    clock.advance(10)
    with pytest.raises(TooManyAttempts, match="try again in 20 s"):
        service.authenticate("ANA ", PASSWORD)
    clock.advance(21)
    assert service.authenticate("ana", "yet another guess") is None
    with pytest.raises(TooManyAttempts, match="try again in 60 s"):
        service.authenticate("ana", PASSWORD)
    clock.advance(61)
    assert service.authenticate("ana", PASSWORD) == Actor("ana", Role.AGENT)
    # success clears the count: the next mistakes start from zero again
    for i in range(ACCOUNT_RULE.free - 1):
        assert service.authenticate("ana", f"fresh mistake {i}") is None
    assert service.authenticate("ana", PASSWORD) == Actor("ana", Role.AGENT)
    events = [a for a, _ in actions(ctx)]
    assert events.count("user.sign_in_failed") == ACCOUNT_RULE.free + 1 + ACCOUNT_RULE.free - 1
    assert events.count("user.locked_out") == 2
    assert events.count("user.signed_in") == 2


def test_unknown_accounts_are_throttled_and_audited_like_real_ones(
        service: UserService, ctx: ServiceContext, clock: Clock) -> None:
    for _ in range(ACCOUNT_RULE.free):
        assert service.authenticate("nobody", PASSWORD) is None
    with pytest.raises(TooManyAttempts):
        service.authenticate("nobody", PASSWORD)
    assert ("user.locked_out", "nobody") in actions(ctx)
    assert service.authenticate("ana", PASSWORD) is not None  # other accounts unaffected


def test_one_client_guessing_many_accounts_is_throttled(service: UserService,
                                                        clock: Clock) -> None:
    for i in range(CLIENT_RULE.free):
        assert service.authenticate(f"user{i}", PASSWORD, client="10.1.2.3") is None
    with pytest.raises(TooManyAttempts, match="try again in 30 s"):
        service.authenticate("ana", PASSWORD, client="10.1.2.3")
    assert service.authenticate("ana", PASSWORD, client="10.9.9.9") == Actor("ana", Role.AGENT)


def test_counts_are_forgotten_after_a_quiet_while(service: UserService, clock: Clock) -> None:
    for i in range(ACCOUNT_RULE.free - 1):
        assert service.authenticate("ana", f"wrong guess {i}") is None
    clock.advance(ACCOUNT_RULE.forget_s + 1)
    for i in range(ACCOUNT_RULE.free - 1):
        assert service.authenticate("ana", f"wrong again {i}") is None
    assert service.authenticate("ana", PASSWORD) is not None


def test_the_count_is_shared_by_every_process_on_the_database(
        service: UserService, ctx: ServiceContext, clock: Clock) -> None:
    other_db = Database(ctx.settings.database_url)  # a second engine, as another process has
    try:
        other = UserService(ServiceContext(ctx.settings, other_db, ctx.secrets, now=clock))
        for i in range(ACCOUNT_RULE.free):
            target = service if i % 2 else other
            assert target.authenticate("ana", f"wrong guess {i}") is None
        with pytest.raises(TooManyAttempts):
            other.authenticate("ana", PASSWORD)
        with pytest.raises(TooManyAttempts):
            service.authenticate("ana", PASSWORD)
    finally:
        other_db.dispose()


def test_thirty_parallel_guesses_cost_only_the_free_checks(
        service: UserService, ctx: ServiceContext, clock: Clock,
        verifications: list[str]) -> None:
    outcomes = race(lambda i: service.authenticate("ana", f"parallel guess {i}",
                                                   client="10.0.0.7"), threads=30)
    refused = [o for o in outcomes if isinstance(o, TooManyAttempts)]
    assert [o for o in outcomes if o is not None and not isinstance(o, TooManyAttempts)] == []
    assert len(refused) == 30 - ACCOUNT_RULE.free
    assert len(verifications) == ACCOUNT_RULE.free
    assert [a for a, _ in actions(ctx)].count("user.sign_in_failed") == ACCOUNT_RULE.free


def test_sign_in_and_out_are_audited_without_the_password(service: UserService,
                                                          ctx: ServiceContext) -> None:
    actor = service.authenticate("ana", PASSWORD, client="127.0.0.1")
    assert actor is not None
    service.sign_out(actor, client="127.0.0.1")
    with ctx.db.session(readonly=True) as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [(e.action, e.actor, e.role, e.after) for e in events] == [
        ("user.signed_in", "ana", "agent", {"client": "127.0.0.1"}),
        ("user.signed_out", "ana", "agent", {"client": "127.0.0.1"}),
    ]
    assert all(PASSWORD not in repr((e.before, e.after)) for e in events)


def test_concurrent_hashing_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    slots = passwords.HashingSlots(2)
    monkeypatch.setattr(passwords, "HASHING", slots)
    release = threading.Event()
    entered: list[int] = []

    class SlowHasher:
        def verify(self, _hash: str, _password: str) -> bool:
            entered.append(1)
            assert release.wait(60)
            return False

    monkeypatch.setattr(passwords, "_HASHER", SlowHasher())
    threads = [threading.Thread(target=passwords.verify_password, args=("h", "p"))
               for _ in range(5)]
    for thread in threads:
        thread.start()
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while (slots.in_use, slots.waiting) != (2, 3) and datetime.now(UTC) < deadline:
        threading.Event().wait(0.01)
    assert (slots.in_use, slots.waiting, len(entered)) == (2, 3, 2)
    release.set()
    for thread in threads:
        thread.join(30)
    assert (slots.in_use, slots.waiting, len(entered)) == (0, 0, 5)


def test_a_full_hashing_queue_says_to_try_again(monkeypatch: pytest.MonkeyPatch) -> None:
    slots = passwords.HashingSlots(1)
    with slots.slot(), pytest.raises(passwords.HashingBusy, match="try again"), \
            slots.slot(timeout_s=0):
        pass


@pytest.mark.parametrize("password", ["aaaaaaaaaaaa", "password1234", "qwertyuiop123",
                                      "iloveyou2024!", "ana-ana-ana-ana"])
def test_guessable_passwords_are_refused(service: UserService, password: str) -> None:
    problem = passwords.password_problem(password, ["ana"])
    assert problem is not None and "too easy to guess" in problem


def test_strong_passwords_are_accepted() -> None:
    for password in (PASSWORD, "linker-admin-demo", passwords.generate_password()):
        assert passwords.password_problem(password) is None
