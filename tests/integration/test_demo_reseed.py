"""Seeding the demo again (``make demo`` restarted) only adds what is missing: whatever a user
changed in the console since (integration settings, auto-linking, probes, accounts, deleted
integrations) stays as they left it, and no seed audit event rewrites it.

No adaptor runs: the seed is given loopback URLs nobody serves and no customers (customers
are created only when missing, see test_demo.py), so only integrations and accounts are seeded.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select

from linker.core.permissions import Actor, Role
from linker.core.probes import ProbeSettingsInput
from linker.demo import DEMO_ACCOUNTS, DEMO_INTEGRATIONS, SeedReport, seed_demo
from linker.services.context import ServiceContext
from linker.services.integrations import IntegrationService, IntegrationView
from linker.services.probes import ProbeService
from linker.services.targets import target_for
from linker.services.users import UserService
from linker.store.models import AuditEvent, Integration

ADMIN = Actor("ana", Role.ADMIN)
"""The admin who changes the demo in the console between two starts."""


def urls(first_port: int) -> dict[str, str]:
    """Loopback adaptor URLs, one port per demo integration from ``first_port``."""
    return {i.key: f"http://127.0.0.1:{first_port + n}/"
            for n, i in enumerate(DEMO_INTEGRATIONS)}


def seed(ctx: ServiceContext, adaptor_urls: Mapping[str, str]) -> SeedReport:
    """The demo's integrations and accounts (no customers, so no adaptor is called)."""
    return seed_demo(ctx, adaptor_urls, customers=())


def views(ctx: ServiceContext) -> dict[str, IntegrationView]:
    """Every integration's settings, by name."""
    return {v.name: v for v in IntegrationService(ctx).list(ADMIN)}


def last_event_id(ctx: ServiceContext) -> int:
    """The newest audit event's id (0 when there is none)."""
    with ctx.db.session(readonly=True) as s:
        return max(s.scalars(select(AuditEvent.id)), default=0)


def events_since(ctx: ServiceContext, after_id: int) -> list[AuditEvent]:
    """The audit events written after event ``after_id``."""
    with ctx.db.session(readonly=True) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.id > after_id)
                              .order_by(AuditEvent.id)))


def signing_key(ctx: ServiceContext, name: str) -> str:
    """The signing key stored for integration ``name`` (decrypted)."""
    with ctx.db.session(readonly=True) as s:
        integration = s.scalars(select(Integration).where(Integration.name == name)).one()
        return target_for(integration, ctx.secrets).signing_key


def change_everything(ctx: ServiceContext) -> None:
    """What an admin might do in the console after the first start."""
    ids = {name: view.id for name, view in views(ctx).items()}
    integrations = IntegrationService(ctx)
    integrations.set_autolink(ADMIN, ids["Travel"], True, ("email", "mobile"))
    integrations.set_autolink(ADMIN, ids["Shop"], False, ("email",))
    integrations.update(ADMIN, ids["Loyalty"], {
        "url": "http://127.0.0.1:9999/loyalty/", "timeout_s": 9.0, "signing_key": "rotated-key",
        "search_query_attributes": [{"attribute": "email", "label": "E-mail address"}]})
    integrations.deactivate(ADMIN, ids["Shop (flaky)"])
    ProbeService(ctx).configure(ADMIN, ids["Shop"], ProbeSettingsInput(
        enabled=True, every_minutes=30, known_email="probe@example.com"))
    users = UserService(ctx)
    users.change_role(ADMIN, "lead", Role.AGENT)
    users.set_password(ADMIN, "agent", "a-new-agent-password")
    users.disable(ADMIN, "developer")


def test_seeding_again_keeps_what_an_admin_changed(ctx: ServiceContext) -> None:
    seed(ctx, urls(20001))
    change_everything(ctx)
    changed = views(ctx)
    mark = last_event_id(ctx)

    again = seed(ctx, urls(20001))

    assert views(ctx) == changed
    assert changed["Travel"].autolink_fields == ("email", "mobile")
    assert not changed["Shop"].autolink_enabled
    assert signing_key(ctx, "Loyalty") == "rotated-key"
    probe = ProbeService(ctx).settings(ADMIN, changed["Shop"].id)
    assert (probe.enabled, probe.every_minutes, probe.known_email) == (
        True, 30, "probe@example.com")
    users = UserService(ctx)
    accounts = {u.username: u for u in users.list(ADMIN)}
    assert accounts["lead"].role is Role.AGENT
    assert accounts["developer"].disabled
    assert users.authenticate("agent", "a-new-agent-password") is not None
    assert users.authenticate("agent", "linker-agent-demo") is None
    assert again.integrations == {i.name: "unchanged" for i in DEMO_INTEGRATIONS}
    assert again.accounts == {a.username: "unchanged" for a in DEMO_ACCOUNTS}
    # Nothing was rewritten behind the admin's back (signing in writes its own events).
    written = [(e.actor, e.action) for e in events_since(ctx, mark)
               if e.entity_type in ("integration", "user") and not e.action.startswith(
                   ("user.signed_in", "user.sign_in_failed"))]
    assert written == []


def test_a_moved_adaptor_is_followed_unless_a_user_set_the_url(ctx: ServiceContext) -> None:
    seed(ctx, urls(20001))
    change_everything(ctx)
    mark = last_event_id(ctx)

    again = seed(ctx, urls(21001))

    after = views(ctx)
    moved = urls(21001)
    for integration in DEMO_INTEGRATIONS:
        if integration.name == "Loyalty":  # the admin pointed it elsewhere: theirs
            assert after["Loyalty"].url == "http://127.0.0.1:9999/loyalty/"
            assert again.integrations["Loyalty"] == "unchanged"
        else:
            assert after[integration.name].url == moved[integration.key]
            assert again.integrations[integration.name] == "updated"
    # The seed changed the URLs and nothing else.
    rewritten = [e for e in events_since(ctx, mark) if e.entity_type == "integration"]
    assert len(rewritten) == 3
    assert all(e.action == "integration.updated" and set(e.after or {}) == {"url"}
               for e in rewritten)
    assert after["Travel"].autolink_fields == ("email", "mobile")
    assert not after["Shop (flaky)"].active


def test_an_integration_a_user_deleted_is_not_brought_back(ctx: ServiceContext) -> None:
    seed(ctx, urls(20001))
    integrations = IntegrationService(ctx)
    integrations.delete(ADMIN, views(ctx)["Travel"].id)

    again = seed(ctx, urls(20001))

    assert "Travel" not in views(ctx)
    assert again.integrations["Travel"] == "deleted"
    assert again.integrations["Shop"] == "unchanged"


def test_integrations_nobody_changed_are_made_to_match_the_demo(ctx: ServiceContext) -> None:
    # A database filled outside the services (bench/gen_big_db.py): no audit trail, no keys.
    with ctx.db.session() as s:
        s.add(Integration(name="Shop", name_key="shop", url="http://127.0.0.1:8401/"))
    adaptor_urls = urls(20001)

    report = seed(ctx, adaptor_urls)

    shop = views(ctx)["Shop"]
    assert report.integrations["Shop"] == "updated"
    assert shop.url == adaptor_urls["shop"] and shop.autolink_fields == ("email", "mobile")
    assert signing_key(ctx, "Shop") == "demo-shop-signing-key"
