"""Test connection before save (``IntegrationService.test_unsaved``): the unsaved settings are
validated as ``create`` would, one real BASIC search goes to the adaptor over loopback, and
nothing is stored (no integration, no exchange, no audit event)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from linker.adaptor import BackgroundServer, create_app
from linker.core.integration_config import (
    DEFAULT_SEARCH_QUERY_ATTRIBUTES,
    AttributeSpec,
    IntegrationConfig,
)
from linker.core.permissions import SYSTEM, Actor, Role
from linker.lookup import ErrorKind, Trigger
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, PermissionDenied
from linker.services.integrations import IntegrationService, probe_request
from linker.store.models import AuditEvent, ExchangeRecord, Integration
from tests.integration.test_integrations import (
    PASSWORD,
    SHOP_EMAIL,
    SIGNING_KEY,
    assert_no_secret,
    full_spec,
)


@pytest.fixture
def service(ctx: ServiceContext) -> IntegrationService:
    return IntegrationService(ctx)


def stored_rows(ctx: ServiceContext) -> tuple[int, int, int]:
    """How many integrations, exchanges and audit events the database holds."""
    with ctx.db.session(readonly=True) as s:
        return tuple(s.scalar(select(func.count()).select_from(model)) or 0  # type: ignore[return-value]
                     for model in (Integration, ExchangeRecord, AuditEvent))


def test_an_unsaved_integration_is_tested_over_loopback_and_nothing_is_stored(
        service: IntegrationService, ctx: ServiceContext) -> None:
    app = create_app("shop", signing_key=SIGNING_KEY, username="linker", password=PASSWORD)
    with BackgroundServer(app) as server:
        exchange = service.test_unsaved(SYSTEM, full_spec(url=server.url + "lookup"),
                                        email=SHOP_EMAIL)
    assert exchange.ok, exchange.error
    assert (exchange.trigger, exchange.integration) == (Trigger.TEST, "Shop")
    assert len(exchange.results) == 1
    assert SHOP_EMAIL in (exchange.request.body or "")
    assert_no_secret(repr(exchange))  # the client masks the password, key and secret header
    assert stored_rows(ctx) == (0, 0, 0)


def test_wrong_unsaved_credentials_come_back_as_a_failed_exchange(
        service: IntegrationService, ctx: ServiceContext) -> None:
    app = create_app("shop", signing_key="the-adaptor-expects-another-key")
    with BackgroundServer(app) as server:
        exchange = service.test_unsaved(SYSTEM, full_spec(url=server.url + "lookup",
                                                          username="", password=""))
    assert exchange.error is not None and exchange.error.kind is ErrorKind.HTTP_STATUS
    assert exchange.response is not None and exchange.response.status in (401, 403)
    assert "linker.connection.test@example.com" in (exchange.request.body or "")
    assert stored_rows(ctx) == (0, 0, 0)


def test_bad_unsaved_settings_are_refused_per_field_before_any_request(
        service: IntegrationService, ctx: ServiceContext) -> None:
    with pytest.raises(InvalidInput) as info:
        service.test_unsaved(SYSTEM, full_spec(name="", url="ftp://adaptor.example.com/"))
    assert set(info.value.fields) >= {"name", "url"}
    assert stored_rows(ctx) == (0, 0, 0)


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.AGENT, Role.SUPPORT_LEAD])
def test_only_a_role_that_may_add_integrations_tests_unsaved_settings(
        service: IntegrationService, role: Role) -> None:
    with pytest.raises(PermissionDenied):
        service.test_unsaved(Actor("someone", role), full_spec())


def config_searching_by(*keys: str) -> IntegrationConfig:
    """A raw config whose search query attributes are ``keys``."""
    return IntegrationConfig.of_spec(full_spec(
        search_query_attributes=tuple(AttributeSpec(key) for key in keys)))


def test_the_probe_uses_the_plural_key_when_the_adaptor_knows_only_that() -> None:
    assert probe_request(config_searching_by("emails"), "a@example.com", None).query == {
        "emails": "a@example.com"}
    assert probe_request(config_searching_by("email", "phone"), None, "+14155550100").query == {
        "phone": "+14155550100"}
    assert probe_request(config_searching_by(), None, " ").query == {
        "email": "linker.connection.test@example.com"}


def test_unsaved_rate_caps_are_validated_beside_the_other_fields(
        service: IntegrationService, ctx: ServiceContext) -> None:
    with pytest.raises(InvalidInput) as info:
        service.test_unsaved(SYSTEM, full_spec(max_concurrent_requests=-1,
                                               max_requests_per_second=-2.0))
    assert set(info.value.fields) >= {"max_concurrent_requests", "max_requests_per_second"}
    assert stored_rows(ctx) == (0, 0, 0)


def test_new_integrations_default_to_searching_by_email_and_phone() -> None:
    assert [(a.attribute, a.label) for a in DEFAULT_SEARCH_QUERY_ATTRIBUTES] == [
        ("email", "Email"), ("phone", "Phone")]
