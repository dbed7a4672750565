"""The role matrix of the customers, integrations and users services: every role × every
public method is either allowed (the call succeeds) or refused with PermissionDenied before
anything changes. The table is written out by hand so a change to the roles shows up here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select

from linker.adaptor import create_app
from linker.core.permissions import SYSTEM, Actor, Role
from linker.lookup import LookupClient
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService
from linker.services.errors import PermissionDenied
from linker.services.integrations import IntegrationService, IntegrationSpec
from linker.services.passwords import hash_password
from linker.services.users import UserService
from linker.store.models import AuditEvent, ExchangeRecord, User

A, D, G, S = Role.ADMIN, Role.DEVELOPER, Role.AGENT, Role.SUPPORT_LEAD
ALL = frozenset(Role)
PASSWORD = "a long enough password"


@dataclass
class World:
    """Services and the things the calls act on."""

    customers: CustomerService
    integrations: IntegrationService
    users: UserService
    customer_id: str
    integration_id: int
    tag: str

    def spec(self, name: str) -> IntegrationSpec:
        return IntegrationSpec(name=name, url="http://127.0.0.1:9/lookup")


Call = Callable[[World, Actor], object]

# method -> (call, roles allowed)
MATRIX: dict[str, tuple[Call, frozenset[Role]]] = {
    "customers.create": (lambda w, a: w.customers.create(a, "New", [f"{w.tag}@example.com"]),
                         frozenset({A, G})),
    "customers.import_csv": (lambda w, a: w.customers.import_csv(
        a, f"name,email,phone\nNew,{w.tag}@example.com,\n"), frozenset({A, G})),
    "customers.find": (lambda w, a: w.customers.find(a, name="ana"), ALL),
    "customers.get": (lambda w, a: w.customers.get(a, w.customer_id), ALL),
    "integrations.list": (lambda w, a: w.integrations.list(a), frozenset({A, D, S})),
    "integrations.get": (lambda w, a: w.integrations.get(a, w.integration_id),
                         frozenset({A, D, S})),
    "integrations.get_by_name": (lambda w, a: w.integrations.get_by_name(a, "shop"),
                                 frozenset({A, D, S})),
    "integrations.ids_named": (lambda w, a: w.integrations.ids_named(a, ["shop"]),
                               frozenset({A, D, S})),
    "integrations.impact": (lambda w, a: w.integrations.impact(a, w.integration_id),
                            frozenset({A, D, S})),
    "integrations.create": (lambda w, a: w.integrations.create(a, w.spec("Other")),
                            frozenset({A})),
    "integrations.update": (lambda w, a: w.integrations.update(a, w.integration_id,
                                                               {"timeout_s": 9}),
                            frozenset({A})),
    "integrations.apply": (lambda w, a: w.integrations.apply(a, w.spec("Applied")),
                           frozenset({A})),
    "integrations.deactivate": (lambda w, a: w.integrations.deactivate(a, w.integration_id),
                                frozenset({A})),
    "integrations.activate": (lambda w, a: w.integrations.activate(a, w.integration_id),
                              frozenset({A})),
    "integrations.delete": (lambda w, a: w.integrations.delete(a, w.integration_id),
                            frozenset({A})),
    "integrations.set_autolink": (lambda w, a: w.integrations.set_autolink(
        a, w.integration_id, True, ["email"]), frozenset({A})),
    "integrations.test_connection": (lambda w, a: w.integrations.test_connection(
        a, w.integration_id), frozenset({A, D})),
    "integrations.test_unsaved": (lambda w, a: w.integrations.test_unsaved(
        a, w.spec("Unsaved")), frozenset({A})),
    "users.create": (lambda w, a: w.users.create(a, f"u-{w.tag}", Role.AGENT, PASSWORD),
                     frozenset({A})),
    "users.ensure_user": (lambda w, a: w.users.ensure_user(a, f"u-{w.tag}", Role.AGENT),
                          frozenset({A})),
    "users.change_role": (lambda w, a: w.users.change_role(a, "target", Role.DEVELOPER),
                          frozenset({A})),
    "users.set_password": (lambda w, a: w.users.set_password(a, "target", PASSWORD + "2"),
                           frozenset({A})),
    "users.disable": (lambda w, a: w.users.disable(a, "target"), frozenset({A})),
    "users.enable": (lambda w, a: w.users.enable(a, "target"), frozenset({A})),
    "users.list": (lambda w, a: w.users.list(a), frozenset({A})),
}


@pytest.fixture(scope="module")
def target_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def world(ctx: ServiceContext, target_hash: str) -> World:
    ctx.client = LookupClient(transport=httpx.ASGITransport(app=create_app("shop")))
    customers, integrations, users = (CustomerService(ctx), IntegrationService(ctx),
                                      UserService(ctx))
    integration = integrations.create(SYSTEM, IntegrationSpec(
        name="Shop", url="http://127.0.0.1:9/lookup"))
    customer = customers.create(SYSTEM, "Ana", ["ana@example.com"]).customer
    with ctx.db.session() as s:  # the hash is made once: Argon2id is slow on purpose
        s.add(User(username="target", role=Role.AGENT.value, password_hash=target_hash))
    return World(customers, integrations, users, customer.id, integration.id, "t1")


def changes(ctx: ServiceContext) -> tuple[int, int]:
    with ctx.db.session(readonly=True) as s:
        return (int(s.scalar(select(func.count()).select_from(AuditEvent)) or 0),
                int(s.scalar(select(func.count()).select_from(ExchangeRecord)) or 0))


def test_the_table_covers_every_public_method() -> None:
    public = {f"{prefix}.{name}"
              for prefix, cls in (("customers", CustomerService),
                                  ("integrations", IntegrationService), ("users", UserService))
              for name in vars(cls) if not name.startswith("_")}
    assert public - {"users.authenticate", "users.session_actor", "users.sign_out"} == set(MATRIX)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
@pytest.mark.parametrize("method", sorted(MATRIX))
def test_role_matrix(world: World, ctx: ServiceContext, method: str, role: Role) -> None:
    call, allowed = MATRIX[method]
    actor = Actor(f"{role.value}-user", role)
    before = changes(ctx)
    if role in allowed:
        assert call(world, actor) is not None
    else:
        with pytest.raises(PermissionDenied, match=f"{role.value}-user \\({role.value}\\) may "
                                                   "not"):
            call(world, actor)
        assert changes(ctx) == before


def test_authenticate_needs_no_actor(world: World) -> None:
    assert world.users.authenticate("target", PASSWORD) == Actor("target", Role.AGENT)


def test_sign_out_is_open_to_every_role(world: World) -> None:
    for role in Role:
        world.users.sign_out(Actor("target", role))


def test_session_actor_needs_no_actor(world: World) -> None:
    assert world.users.session_actor("target") == Actor("target", Role.AGENT)
