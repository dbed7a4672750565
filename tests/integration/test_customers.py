"""CustomerService on SQLite and PostgreSQL: create (with auto-linking), find, get, CSV import."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from sqlalchemy import func, select

from linker.adaptor import create_app, load_dataset
from linker.core.autolink import Outcome
from linker.core.permissions import SYSTEM
from linker.csvexport import safe_cell
from linker.lookup import LookupClient
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService, ImportReport, PhoneInput
from linker.services.errors import Conflict, InvalidInput, NotFound
from linker.services.integrations import IntegrationService, IntegrationSpec
from linker.store.models import (
    AuditEvent,
    ExchangeRecord,
    Integration,
    Link,
    PulledData,
    Suppression,
)

SHOP = load_dataset("shop")
RECORD = next(r for r in SHOP.records
              if r.emails and len(SHOP.search(emails=[r.emails[0]])) == 1)


@pytest.fixture
def customers(ctx: ServiceContext) -> CustomerService:
    return CustomerService(ctx)


def add_shop(ctx: ServiceContext, *, autolink: bool = True) -> int:
    """A Shop integration served in-process by the reference adaptor."""
    ctx.client = LookupClient(transport=httpx.ASGITransport(app=create_app("shop")))
    view = IntegrationService(ctx).create(SYSTEM, IntegrationSpec(
        name="Shop", url="http://127.0.0.1:9/lookup", autolink_enabled=autolink,
        autolink_fields=("email",)))
    return view.id


def table_count(ctx: ServiceContext, model: type) -> int:
    with ctx.db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# -- create ----------------------------------------------------------------------------------


def test_create_normalises_and_orders_contact_data(customers: CustomerService,
                                                   ctx: ServiceContext) -> None:
    created = customers.create(
        SYSTEM, "  Ana López ", [" Ana@Example.com ", "ana@example.com", "ana.work@example.com"],
        [("(415) 555-2671", "mobile"), PhoneInput("+1 415 555 2671", "HOME"),
         ("+44 20 7946 0958", "OFFICE")], address=" 1 Main St ")
    view = created.customer
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", view.id)
    assert (view.name, view.address) == ("Ana López", "1 Main St")
    assert [(e.normalized, e.main) for e in view.emails] == [
        ("ana@example.com", True), ("ana.work@example.com", False)]
    assert view.main_email == "ana@example.com"
    assert [(p.e164, p.type) for p in view.phones] == [("+14155552671", "MOBILE"),
                                                      ("+442079460958", "OFFICE")]
    assert created.autolink == ()  # no integration to auto-link to
    with ctx.db.session(readonly=True) as s:
        event = s.scalars(select(AuditEvent)).one()
    assert (event.action, event.entity_id) == ("customer.created", view.id)
    assert event.after is not None and event.after["emails"][0] == "ana@example.com"


def test_ids_are_unique(customers: CustomerService) -> None:
    ids = {customers.create(SYSTEM, f"P{i}").customer.id for i in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize(("name", "emails", "phones", "field"), [
    ("", [], [], "name"),
    ("  ", [" "], [("", "MOBILE")], "name"),
    ("Ana", ["not-an-email"], [], "emails"),
    ("Ana", ["a@b"], [], "emails"),
    ("Ana", [], [("12", "MOBILE")], "phones"),
    ("Ana", [], [("+14155552671", "PAGER")], "phones"),
    ("x" * 201, [], [], "name"),
])
def test_create_refuses_bad_values(customers: CustomerService, name: str, emails: list[str],
                                   phones: list[tuple[str, str]], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        customers.create(SYSTEM, name, emails, phones)
    assert field in info.value.fields


def test_email_on_another_profile_is_refused_naming_it(customers: CustomerService) -> None:
    ana = customers.create(SYSTEM, "Ana López", ["ana@example.com"]).customer
    with pytest.raises(Conflict) as info:
        customers.create(SYSTEM, "Someone", [" ANA@example.com"])
    assert str(info.value) == (f"ana@example.com is already on the profile of Ana López "
                               f"(id {ana.id})")


def test_mobile_on_another_profile_is_refused_but_home_is_not(
        customers: CustomerService) -> None:
    bob = customers.create(SYSTEM, "Bob", [], [("+14155552671", "MOBILE")]).customer
    with pytest.raises(Conflict, match=f"\\+14155552671 is already on the profile of Bob "
                                       f"\\(id {bob.id}\\)"):
        customers.create(SYSTEM, "Eve", [], [("415-555-2671", "MOBILE")])
    home = customers.create(SYSTEM, "Eve", [], [("415-555-2671", "HOME")]).customer
    assert home.phones[0].type == "HOME"
    with pytest.raises(Conflict, match="profile without a name"):
        nameless = customers.create(SYSTEM, "", ["x@example.com"]).customer
        assert nameless.name == ""
        customers.create(SYSTEM, "Y", ["x@example.com"])


def test_create_runs_autolinking_and_returns_its_results(customers: CustomerService,
                                                         ctx: ServiceContext) -> None:
    shop_id = add_shop(ctx)
    created = customers.create(SYSTEM, RECORD.name, [RECORD.emails[0].upper()])
    assert [(r.integration_name, r.outcome) for r in created.autolink] == [
        ("Shop", Outcome.LINKED)]
    assert [(link.integration_id, link.external_customer_id, link.method)
            for link in created.customer.links] == [(shop_id, RECORD.external_customer_id,
                                                     "auto")]
    assert [p.integration_name for p in created.customer.pulled] == ["Shop"]



def test_the_autolink_request_sends_the_email_the_rule_compares(customers: CustomerService,
                                                               ctx: ServiceContext) -> None:
    add_shop(ctx)
    local, _, domain = RECORD.emails[0].partition("@")
    typed = f"  {local.upper()}\uff20{domain} "  # upper case, spaces, a full-width at sign
    created = customers.create(SYSTEM, RECORD.name, [typed])
    [email] = created.customer.emails
    assert email.normalized == RECORD.emails[0].lower()
    assert [r.outcome for r in created.autolink] == [Outcome.LINKED]
    with ctx.db.session(readonly=True) as s:
        request = s.scalars(select(ExchangeRecord.request_body)
                            .where(ExchangeRecord.kind == "autolink")).one()
    assert json.loads(request)["query"]["emails"] == [email.normalized]


# -- find and get ----------------------------------------------------------------------------


def test_find_takes_values_pasted_from_a_csv_export(customers: CustomerService) -> None:
    """Linker's CSV exports put an apostrophe before a cell starting with a formula character
    (safe_cell); such a value pasted into Find still finds the profile."""
    eve = customers.create(SYSTEM, "=Eve Formula", ["-eve@example.com"],
                           [("+14155552672", "MOBILE")]).customer
    assert safe_cell("-eve@example.com") == "'-eve@example.com"
    assert [c.id for c in customers.find(SYSTEM, email="'-eve@example.com")] == [eve.id]
    assert [c.id for c in customers.find(SYSTEM, phone="'+14155552672")] == [eve.id]
    assert [c.id for c in customers.find(SYSTEM, name="'=Eve")] == [eve.id]
    assert customers.find(SYSTEM, name="''=Eve") == []  # only the one apostrophe goes


def test_find(customers: CustomerService) -> None:
    ana = customers.create(SYSTEM, "Ana López", ["ana@example.com"],
                           [("+14155552671", "MOBILE")]).customer
    bob = customers.create(SYSTEM, "Bob Anders", ["bob@example.com"],
                           [("+442079460958", "HOME")]).customer
    assert [c.id for c in customers.find(SYSTEM, email=" ANA@example.COM")] == [ana.id]
    assert [c.id for c in customers.find(SYSTEM, phone="(415) 555-2671")] == [ana.id]
    assert [c.id for c in customers.find(SYSTEM, phone="+44 20 7946 0958")] == [bob.id]
    assert {c.id for c in customers.find(SYSTEM, name="AN")} == {ana.id, bob.id}
    assert [c.id for c in customers.find(SYSTEM, name="an", email="bob@example.com")] == [
        bob.id]
    assert customers.find(SYSTEM, name="100%_") == []
    assert customers.find(SYSTEM, email="nobody@example.com") == []
    assert len(customers.find(SYSTEM, limit=1)) == 1
    summary = customers.find(SYSTEM, email="ana@example.com")[0]
    assert (summary.name, summary.main_email, summary.phones, summary.linked_systems) == (
        "Ana López", "ana@example.com", ("+14155552671",), ())
    with pytest.raises(InvalidInput) as info:
        customers.find(SYSTEM, email="not an email")
    assert "email" in info.value.fields


def test_get_shows_links_pulled_data_and_suppressions(customers: CustomerService,
                                                      ctx: ServiceContext) -> None:
    shop_id = add_shop(ctx, autolink=False)
    ana = customers.create(SYSTEM, "Ana", ["ana@example.com"]).customer
    now = ctx.now()
    with ctx.db.session() as s:
        loyalty = Integration(name="Loyalty", name_key="loyalty", url="https://l.example/")
        s.add(loyalty)
        s.flush()
        s.add(Link(customer_id=ana.id, integration_id=shop_id, external_customer_id="s-1",
                   method="manual", created_by="agent1", created_at=now))
        s.add(PulledData(customer_id=ana.id, integration_id=shop_id,
                         custom_attributes={"tier": "gold"},
                         transactions=[{"type": "ORDER", "orderNumber": "#1"}],
                         dropped=[{"value": "x@example.com", "reason": "on another profile"}],
                         fetched_at=now, last_error=""))
        s.add(Suppression(customer_id=ana.id, integration_id=loyalty.id, created_by="agent1",
                          created_at=now))
    view = customers.get(SYSTEM, ana.id)
    assert [(link.integration_name, link.external_customer_id, link.method, link.created_by)
            for link in view.links] == [("Shop", "s-1", "manual", "agent1")]
    assert len(view.pulled) == 1
    pulled = view.pulled[0]
    assert pulled.custom_attributes == {"tier": "gold"}
    assert pulled.transactions == ({"type": "ORDER", "orderNumber": "#1"},)
    assert pulled.dropped[0]["value"] == "x@example.com"
    assert pulled.fetched_at == now
    assert [sup.integration_name for sup in view.suppressions] == ["Loyalty"]
    assert table_count(ctx, ExchangeRecord) == 0  # a pure read
    assert customers.find(SYSTEM, email="ana@example.com")[0].linked_systems == ("Shop",)


def test_get_unknown_customer(customers: CustomerService) -> None:
    with pytest.raises(NotFound, match="no customer with id"):
        customers.get(SYSTEM, "nope")


# -- CSV import ------------------------------------------------------------------------------

GOOD_AND_BAD = """name,email,phone,phone_type
Ana López,ana@example.com,+14155552671,MOBILE
Bob,bob@example,,
Cara,cara@example.com,12345,HOME
Dan,,,
,,,

Eve,ANA@example.com,,
Fay,fay@example.com,+14155552672
"Gus
Junior",gus@example.com,+442079460958,office
Held,held@example.com,,
Hal,hal@example.com,+14155552674,PAGER
Ivy,ivy@example.com,+14155552673,,extra
Dan,,,
"""


def test_import_keeps_good_rows_and_reports_bad_ones_by_line(customers: CustomerService,
                                                             ctx: ServiceContext) -> None:
    held = customers.create(SYSTEM, "Holder", ["held@example.com"]).customer
    add_shop(ctx)  # auto-linking is on, but an import must not send anything
    report = customers.import_csv(SYSTEM, GOOD_AND_BAD)
    assert isinstance(report, ImportReport)
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (3, "bad email"),
        (4, "bad phone"),
        (6, "empty row"),
        (7, "empty row"),
        (8, "duplicate of line 2 (ana@example.com)"),
        (9, "missing columns"),
        (12, f"held@example.com is already on the profile of Holder (id {held.id})"),
        (13, "bad phone"),
        (14, "too many values"),
        (15, "duplicate of line 5 (the same values)"),
    ]
    assert "PAGER" in report.rejected[7].reason
    assert report.counts() == {"rows": 13, "created": 3, "rejected": 10}
    assert not report.ok
    names = {c.name: c for c in customers.find(SYSTEM, limit=100)}
    assert set(names) == {"Ana López", "Dan", "Gus\nJunior", "Holder"}
    assert customers.get(SYSTEM, names["Gus\nJunior"].id).phones[0].type == "OFFICE"
    assert customers.get(SYSTEM, names["Ana López"].id).phones[0].type == "MOBILE"
    assert table_count(ctx, ExchangeRecord) == 0
    assert table_count(ctx, Link) == 0
    with ctx.db.session(readonly=True) as s:
        event = s.scalars(select(AuditEvent).where(
            AuditEvent.action == "customer.imported")).one()
    assert event.after == {"rows": 13, "created": 3, "rejected": 10}


def test_import_phone_type_defaults_to_mobile_and_column_is_optional(
        customers: CustomerService) -> None:
    report = customers.import_csv(SYSTEM, "Email,Name,Phone\r\nz@example.com,Zed,4155552699\r\n")
    assert report.ok and len(report.created) == 1
    view = customers.get(SYSTEM, report.created[0])
    assert [(p.e164, p.type) for p in view.phones] == [("+14155552699", "MOBILE")]
    assert view.name == "Zed"


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("name;email;phone\n", "missing column"),
    ("name,email,phone,colour\n", "unknown column"),
    ("name,email,email,phone\n", "repeated column"),
])
def test_import_with_a_malformed_header_is_refused(customers: CustomerService, text: str,
                                                   message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        customers.import_csv(SYSTEM, text)
    assert message in info.value.fields["header"]


def test_import_ignores_trailing_blank_lines(customers: CustomerService) -> None:
    report = customers.import_csv(SYSTEM, "name,email,phone\nAna,a@example.com,\n\n\n")
    assert report.ok and report.counts()["rows"] == 1
