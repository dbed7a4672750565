"""IntegrationService on SQLite and PostgreSQL: validation, secrets, updates, (de)activation,
deletion, auto-link settings and the connection test against the reference adaptor."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from linker.adaptor import BackgroundServer, create_app, load_dataset
from linker.core.permissions import SYSTEM
from linker.lookup import ErrorKind, LookupClient, Trigger
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService
from linker.services.errors import InvalidInput, NotFound
from linker.services.integrations import (
    AttributeSpec,
    HeaderSpec,
    IntegrationChanges,
    IntegrationService,
    IntegrationSpec,
)
from linker.store.models import (
    AuditEvent,
    AutolinkOutcome,
    Customer,
    ExchangeRecord,
    Integration,
    Link,
    PulledData,
    Suppression,
)

PASSWORD = "adaptor-password-4242"
SIGNING_KEY = "signing-key-s3cr3t-0042"
API_KEY = "api-key-value-7777"
SECRETS = (PASSWORD, SIGNING_KEY, API_KEY)
LOOPBACK_URL = "http://127.0.0.1:9/lookup"
SHOP = load_dataset("shop")
SHOP_EMAIL = next(r.emails[0] for r in SHOP.records
                  if r.emails and len(SHOP.search(emails=[r.emails[0]])) == 1)


def full_spec(name: str = "Shop", **changes: Any) -> IntegrationSpec:
    spec = IntegrationSpec(
        name=name, url="https://shop-adaptor.example.com/lookup", username="linker",
        password=PASSWORD, realm="shop", signing_key=SIGNING_KEY,
        headers=(HeaderSpec("X-Tenant", "eu"), HeaderSpec("X-Api-Key", API_KEY, secret=True)),
        search_query_attributes=(AttributeSpec("email", "Email"), AttributeSpec("orderNumber")),
        search_results_attributes=(AttributeSpec("name", "Name"),),
        autolink_enabled=True, autolink_fields=("mobile", "email"), timeout_s=7)
    return dataclasses.replace(spec, **changes)


@pytest.fixture
def service(ctx: ServiceContext) -> IntegrationService:
    return IntegrationService(ctx)


def raw_rows(s: Session, table: Any) -> str:
    """Every column of every row of ``table`` as one text, for searching secrets in."""
    return repr([tuple(row) for row in s.execute(select(table.__table__))])


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# -- create and validation -------------------------------------------------------------------


def test_create_returns_a_view_without_secrets(service: IntegrationService) -> None:
    view = service.create(SYSTEM, full_spec())
    assert (view.name, view.username, view.realm, view.timeout_s) == ("Shop", "linker", "shop",
                                                                      7.0)
    assert view.password_set and view.signing_key_set
    assert [(h.name, h.value, h.secret) for h in view.headers] == [
        ("X-Tenant", "eu", False), ("X-Api-Key", None, True)]
    assert [(a.attribute, a.label) for a in view.search_query_attributes] == [
        ("email", "Email"), ("orderNumber", "orderNumber")]
    assert view.autolink_fields == ("email", "mobile")  # canonical order
    assert view.active
    for shown in (view, service.get(SYSTEM, view.id), service.get_by_name(SYSTEM, "sHoP"),
                  *service.list(SYSTEM)):
        assert_no_secret(repr(shown) + repr(shown.display()))


def test_secrets_are_never_stored_in_clear(service: IntegrationService,
                                           ctx: ServiceContext) -> None:
    view = service.create(SYSTEM, full_spec())
    service.update(SYSTEM, view.id, {"password": PASSWORD + "-new", "url": LOOPBACK_URL})
    with ctx.db.session(readonly=True) as s:
        stored = raw_rows(s, Integration) + raw_rows(s, AuditEvent)
        row = s.get(Integration, view.id)
        assert row is not None
        assert row.password_enc and row.signing_key_enc
        assert ctx.secrets.decrypt(row.password_enc) == PASSWORD + "-new"
    assert_no_secret(stored)
    assert "eu" in stored  # a non-secret header value is stored as it is


def test_defaults(service: IntegrationService) -> None:
    view = service.create(SYSTEM, IntegrationSpec(name="Plain", url="https://a.example/"))
    assert view.timeout_s == 5.0
    assert not (view.password_set or view.signing_key_set or view.autolink_enabled)
    assert view.headers == () and view.autolink_fields == ()


@pytest.mark.parametrize("url", ["https://adaptor.example.com/x", "http://localhost:8401/",
                                 "http://127.0.0.1/", "http://127.9.8.7:99/a", "http://[::1]:80/"])
def test_accepted_urls(service: IntegrationService, url: str) -> None:
    assert service.create(SYSTEM, IntegrationSpec(name="A", url=url)).url == url


@pytest.mark.parametrize("url", ["http://adaptor.example.com/", "http://10.0.0.1/",
                                 "ftp://127.0.0.1/", "adaptor.example.com", "",
                                 "https://user:pw@adaptor.example.com/"])
def test_refused_urls(service: IntegrationService, url: str) -> None:
    with pytest.raises(InvalidInput) as info:
        service.create(SYSTEM, IntegrationSpec(name="A", url=url))
    assert set(info.value.fields) == {"url"}


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"name": "  "}, "name", "give the integration a name"),
    ({"timeout_s": 0.5}, "timeout_s", "1 to 15"),
    ({"timeout_s": 16}, "timeout_s", "1 to 15"),
    ({"timeout_s": True}, "timeout_s", "number"),
    ({"search_query_attributes": (AttributeSpec(" "),)}, "search_query_attributes", "empty"),
    ({"search_results_attributes": (AttributeSpec("a"), AttributeSpec("a", "A"))},
     "search_results_attributes", "twice"),
    ({"headers": (HeaderSpec("Bad Header", "x"),)}, "headers", "not a valid header name"),
    ({"headers": (HeaderSpec("X-A", "1"), HeaderSpec("x-a", "2"))}, "headers", "twice"),
    ({"headers": (HeaderSpec("Authorization", "x"),)}, "headers", "set by Linker"),
    ({"headers": (HeaderSpec("X-Key", None, secret=True),)}, "headers", "give a value"),
    ({"autolink_fields": ("email", "home")}, "autolink_fields", "home"),
    ({"realm": 'a"b'}, "realm", "quotes"),
])
def test_validation_messages_per_field(service: IntegrationService, changes: dict[str, Any],
                                       field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        service.create(SYSTEM, full_spec(**changes))
    assert field in info.value.fields
    assert message in info.value.fields[field]


def test_several_bad_fields_are_reported_together(service: IntegrationService) -> None:
    with pytest.raises(InvalidInput) as info:
        service.create(SYSTEM, IntegrationSpec(name="", url="http://x.example/", timeout_s=99))
    assert set(info.value.fields) == {"name", "url", "timeout_s"}


def test_timeout_bounds_are_inclusive(service: IntegrationService) -> None:
    assert service.create(SYSTEM, full_spec("A", timeout_s=1)).timeout_s == 1.0
    assert service.create(SYSTEM, full_spec("B", timeout_s=15)).timeout_s == 15.0


def test_name_is_unique_ignoring_case(service: IntegrationService) -> None:
    service.create(SYSTEM, full_spec("Shop"))
    with pytest.raises(InvalidInput) as info:
        service.create(SYSTEM, full_spec(" SHOP "))
    assert "already exists" in info.value.fields["name"]
    other = service.create(SYSTEM, full_spec("Loyalty"))
    with pytest.raises(InvalidInput):
        service.update(SYSTEM, other.id, {"name": "shop"})


def test_get_unknown_is_not_found(service: IntegrationService) -> None:
    with pytest.raises(NotFound):
        service.get(SYSTEM, 999)
    with pytest.raises(NotFound, match="no integration named"):
        service.get_by_name(SYSTEM, "Nope")


# -- update ----------------------------------------------------------------------------------


def stored_secrets(ctx: ServiceContext, integration_id: int) -> tuple[str, str, list[str]]:
    with ctx.db.session(readonly=True) as s:
        row = s.get(Integration, integration_id)
        assert row is not None
        headers = [ctx.secrets.decrypt(h["value_enc"]) if h["secret"] else h["value"]
                   for h in row.headers]
        return (ctx.secrets.decrypt(row.password_enc), ctx.secrets.decrypt(row.signing_key_enc),
                headers)


def test_update_secrets_none_keeps_empty_clears_value_replaces(
        service: IntegrationService, ctx: ServiceContext) -> None:
    view = service.create(SYSTEM, full_spec())
    service.update(SYSTEM, view.id, IntegrationChanges(url="https://other.example/"))
    assert stored_secrets(ctx, view.id) == (PASSWORD, SIGNING_KEY, ["eu", API_KEY])
    updated = service.update(SYSTEM, view.id, IntegrationChanges(password="", signing_key="k2"))
    assert not updated.password_set and updated.signing_key_set
    assert stored_secrets(ctx, view.id)[:2] == ("", "k2")
    # a secret header given without value keeps its stored value
    service.update(SYSTEM, view.id, IntegrationChanges(headers=(
        HeaderSpec("X-Api-Key", None, secret=True), HeaderSpec("X-New", "1"))))
    assert stored_secrets(ctx, view.id)[2] == [API_KEY, "1"]


def test_update_audits_changes_without_secrets(service: IntegrationService,
                                               ctx: ServiceContext) -> None:
    view = service.create(SYSTEM, full_spec())
    service.update(SYSTEM, view.id, {"password": "a-new-password", "timeout_s": 9,
                                     "headers": (HeaderSpec("X-Tenant", "eu"),
                                                 HeaderSpec("X-Api-Key", "new-key-value",
                                                            secret=True))})
    with ctx.db.session(readonly=True) as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [e.action for e in events] == ["integration.created", "integration.updated"]
    update = events[1]
    assert update.before == {"timeout_s": 7.0, "password_set": True,
                             "headers": [{"name": "X-Tenant", "value": "eu", "secret": False},
                                         {"name": "X-Api-Key", "value": None, "secret": True}]}
    assert update.after is not None
    assert update.after["password_set"] == "replaced"
    assert update.after["timeout_s"] == 9.0
    assert update.after["headers"][1]["value"] == "replaced"
    text = repr([(e.before, e.after) for e in events])
    assert "a-new-password" not in text and "new-key-value" not in text
    assert_no_secret(text)


def test_update_without_change_writes_nothing(service: IntegrationService,
                                              ctx: ServiceContext) -> None:
    view = service.create(SYSTEM, full_spec())
    again = service.update(SYSTEM, view.id, {"password": PASSWORD, "timeout_s": 7})
    assert again == view
    with ctx.db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == 1


def test_update_refuses_unknown_settings(service: IntegrationService) -> None:
    view = service.create(SYSTEM, full_spec())
    with pytest.raises(InvalidInput) as info:
        service.update(SYSTEM, view.id, {"colour": "red"})
    assert "colour" in info.value.fields


def test_apply_creates_updates_and_reports_unchanged(service: IntegrationService) -> None:
    created = service.apply(SYSTEM, full_spec())
    assert created.action == "created"
    assert service.apply(SYSTEM, full_spec()).action == "unchanged"
    # secrets left out (None) are kept
    assert service.apply(SYSTEM, full_spec(password=None, signing_key=None)).action == (
        "unchanged")
    updated = service.apply(SYSTEM, full_spec(url="https://new.example/", timeout_s=3,
                                              password="changed-password"))
    assert (updated.action, updated.changed) == ("updated", ("url", "password", "timeout_s"))
    assert updated.integration.id == created.integration.id


# -- set_autolink ----------------------------------------------------------------------------


def test_set_autolink(service: IntegrationService, ctx: ServiceContext) -> None:
    view = service.create(SYSTEM, full_spec(autolink_enabled=False, autolink_fields=()))
    on = service.set_autolink(SYSTEM, view.id, True, ["mobile"])
    assert (on.autolink_enabled, on.autolink_fields) == (True, ("mobile",))
    with pytest.raises(InvalidInput) as info:
        service.set_autolink(SYSTEM, view.id, True, ["phone"])
    assert "autolink_fields" in info.value.fields
    service.set_autolink(SYSTEM, view.id, True, ["mobile"])  # no change: no audit event
    with ctx.db.session(readonly=True) as s:
        events = list(s.scalars(select(AuditEvent).where(
            AuditEvent.action == "integration.autolink_changed")))
    assert len(events) == 1
    assert events[0].before == {"autolink_enabled": False, "autolink_fields": []}
    assert events[0].after == {"autolink_enabled": True, "autolink_fields": ["mobile"]}


# -- deactivate / reactivate / delete --------------------------------------------------------


def seed_links(ctx: ServiceContext, shop_id: int, other_id: int) -> list[str]:
    """Three customers: c0 and c1 linked to Shop with pulled data, c2 suppressed; c0 also
    linked to the other integration with data; an outcome and an exchange for Shop."""
    now = ctx.now()
    with ctx.db.session() as s:
        ids = [f"cust-{i}" for i in range(3)]
        for cid in ids:
            s.add(Customer(id=cid, name=cid, created_at=now, updated_at=now))
        s.flush()
        for i, cid in enumerate(ids[:2]):
            s.add(Link(customer_id=cid, integration_id=shop_id,
                       external_customer_id=f"shop-{i}", method="auto", created_at=now))
            s.add(PulledData(customer_id=cid, integration_id=shop_id,
                             custom_attributes={"tier": "gold"},
                             transactions=[{"type": "ORDER"}], fetched_at=now))
        s.add(Link(customer_id=ids[0], integration_id=other_id, external_customer_id="o-1",
                   method="manual", created_at=now))
        s.add(PulledData(customer_id=ids[0], integration_id=other_id,
                         custom_attributes={"points": "10"}, fetched_at=now))
        s.add(Suppression(customer_id=ids[2], integration_id=shop_id, created_at=now))
        s.add(AutolinkOutcome(customer_id=ids[2], integration_id=shop_id, outcome="no_match",
                              created_at=now))
        s.add(ExchangeRecord(integration_id=shop_id, integration_name="Shop", kind="search",
                             trigger="search", correlation_id="c", started_at=now,
                             elapsed_ms=1.0, method="POST", url="https://x/"))
    return ids


def count(ctx: ServiceContext, model: Any, integration_id: int) -> int:
    with ctx.db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(
            model.integration_id == integration_id)) or 0)


def test_deactivate_removes_pulled_data_keeps_links_and_reactivate_revives_them(
        service: IntegrationService, ctx: ServiceContext) -> None:
    shop = service.create(SYSTEM, full_spec("Shop"))
    other = service.create(SYSTEM, full_spec("Loyalty"))
    ids = seed_links(ctx, shop.id, other.id)
    impact = service.impact(SYSTEM, shop.id)
    assert (impact.profiles_with_data, impact.links) == (2, 2)

    assert not service.deactivate(SYSTEM, shop.id).active
    assert count(ctx, PulledData, shop.id) == 0
    assert count(ctx, Link, shop.id) == 2
    assert count(ctx, PulledData, other.id) == 1  # other integrations untouched
    customers = CustomerService(ctx)
    profile = customers.get(SYSTEM, ids[0])
    assert [(link.integration_name, link.integration_active) for link in profile.links] == [
        ("Loyalty", True), ("Shop", False)]
    assert [p.integration_name for p in profile.pulled] == ["Loyalty"]
    assert [p.integration_name for p in profile.active_links] == ["Loyalty"]
    assert customers.find(SYSTEM, name="cust-0")[0].linked_systems == ("Loyalty",)

    assert service.deactivate(SYSTEM, shop.id) == service.get(SYSTEM, shop.id)  # idempotent
    assert service.activate(SYSTEM, shop.id).active
    profile = customers.get(SYSTEM, ids[0])
    assert all(link.integration_active for link in profile.links)
    assert [p.integration_name for p in profile.pulled] == ["Loyalty"]  # refreshed on open
    with ctx.db.session(readonly=True) as s:
        events = list(s.scalars(select(AuditEvent).where(
            AuditEvent.entity_id == str(shop.id)).order_by(AuditEvent.id)))
    assert [e.action for e in events] == ["integration.created", "integration.deactivated",
                                          "integration.activated"]
    assert events[1].after == {"active": False, "pulled_data_removed_from_profiles": 2}


def test_data_pulled_while_inactive_is_hidden(service: IntegrationService,
                                             ctx: ServiceContext) -> None:
    shop = service.create(SYSTEM, full_spec("Shop", active=False))
    other = service.create(SYSTEM, full_spec("Loyalty"))
    ids = seed_links(ctx, shop.id, other.id)
    assert [p.integration_name for p in CustomerService(ctx).get(SYSTEM, ids[1]).pulled] == []


def test_deactivate_through_update_also_removes_pulled_data(service: IntegrationService,
                                                            ctx: ServiceContext) -> None:
    shop = service.create(SYSTEM, full_spec("Shop"))
    other = service.create(SYSTEM, full_spec("Loyalty"))
    seed_links(ctx, shop.id, other.id)
    service.update(SYSTEM, shop.id, {"active": False})
    assert count(ctx, PulledData, shop.id) == 0
    assert count(ctx, Link, shop.id) == 2


def test_delete_removes_everything_of_it_but_keeps_exchanges(service: IntegrationService,
                                                              ctx: ServiceContext) -> None:
    shop = service.create(SYSTEM, full_spec("Shop"))
    other = service.create(SYSTEM, full_spec("Loyalty"))
    ids = seed_links(ctx, shop.id, other.id)
    impact = service.delete(SYSTEM, shop.id)
    assert (impact.links, impact.profiles_with_data, impact.suppressions, impact.outcomes) == (
        2, 2, 1, 1)
    for model in (Link, PulledData, Suppression, AutolinkOutcome):
        assert count(ctx, model, shop.id) == 0
    assert count(ctx, Link, other.id) == 1
    with ctx.db.session(readonly=True) as s:
        exchanges = list(s.scalars(select(ExchangeRecord)))
        assert s.get(Customer, ids[0]) is not None
    assert [(e.integration_id, e.integration_name) for e in exchanges] == [(None, "Shop")]
    with pytest.raises(NotFound):
        service.get(SYSTEM, shop.id)
    assert [v.name for v in service.list(SYSTEM)] == ["Loyalty"]


# -- test connection -------------------------------------------------------------------------


def test_connection_against_the_reference_adaptor_in_process(service: IntegrationService,
                                                             ctx: ServiceContext) -> None:
    app = create_app("shop", signing_key=SIGNING_KEY, username="linker", password=PASSWORD)
    ctx.client = LookupClient(transport=httpx.ASGITransport(app=app))
    view = service.create(SYSTEM, full_spec(url=LOOPBACK_URL))
    stored = service.test_connection(SYSTEM, view.id, email=SHOP_EMAIL)
    assert stored.ok, stored.error
    assert (stored.trigger, stored.integration_id, stored.actor) == (Trigger.TEST, view.id,
                                                                    "system")
    assert stored.result_count == 1
    assert SHOP_EMAIL in stored.request.body
    assert_no_secret(repr(stored))
    with ctx.db.session(readonly=True) as s:
        assert_no_secret(raw_rows(s, ExchangeRecord))
        assert s.scalar(select(func.count()).select_from(ExchangeRecord)) == 1


def test_connection_with_a_wrong_key_stores_the_failure(service: IntegrationService,
                                                        ctx: ServiceContext) -> None:
    app = create_app("shop", signing_key="the-adaptor-expects-another-key")
    ctx.client = LookupClient(transport=httpx.ASGITransport(app=app))
    view = service.create(SYSTEM, full_spec(url=LOOPBACK_URL, username="", password=""))
    stored = service.test_connection(SYSTEM, view.id)
    assert not stored.ok
    assert stored.error is not None and stored.error.kind is ErrorKind.HTTP_STATUS
    assert stored.response is not None and stored.response.status in (401, 403)
    assert "linker.connection.test@example.com" in stored.request.body


def test_connection_over_loopback(service: IntegrationService, ctx: ServiceContext) -> None:
    with BackgroundServer(create_app("shop", signing_key=SIGNING_KEY)) as server:
        view = service.create(SYSTEM, full_spec(url=server.url + "lookup", username="",
                                                password=""))
        stored = service.test_connection(SYSTEM, view.id, email=SHOP_EMAIL)
    assert stored.ok, stored.error
    assert stored.result_count == 1


def test_update_accepts_plain_dict_rows(service: IntegrationService,
                                        ctx: ServiceContext) -> None:
    view = service.create(SYSTEM, full_spec())
    updated = service.update(SYSTEM, view.id, {
        "headers": [{"name": "X-Api-Key", "value": None, "secret": True},
                    {"name": "X-B", "value": "2"}],
        "search_query_attributes": [{"attribute": "phone"}],
        "autolink_fields": ["email"]})
    assert [(a.attribute, a.label) for a in updated.search_query_attributes] == [
        ("phone", "phone")]
    assert updated.autolink_fields == ("email",)
    assert stored_secrets(ctx, view.id)[2] == [API_KEY, "2"]
    with pytest.raises(InvalidInput) as info:
        service.update(SYSTEM, view.id, {"search_results_attributes": [{"attribute": 3}]})
    assert "must be text" in info.value.fields["search_results_attributes"]


def test_auto_linking_cannot_be_switched_on_without_a_field(
        service: IntegrationService) -> None:
    with pytest.raises(InvalidInput) as created:
        service.create(SYSTEM, full_spec("NoField", autolink_fields=()))
    assert created.value.fields["autolink_fields"].startswith("choose email, mobile phone")
    view = service.create(SYSTEM, full_spec(autolink_enabled=False, autolink_fields=()))
    with pytest.raises(InvalidInput) as toggled:
        service.set_autolink(SYSTEM, view.id, True, [])
    assert "autolink_fields" in toggled.value.fields
    assert not service.get(SYSTEM, view.id).autolink_enabled
    assert service.set_autolink(SYSTEM, view.id, True, ["email"]).autolink_enabled
