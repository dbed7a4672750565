"""``find_lookalikes``: the customers a new profile looks like, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from linker.core.permissions import SYSTEM, Actor, Role
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService, PhoneInput
from linker.services.errors import PermissionDenied
from linker.services.lookalikes import MAX_LOOKALIKES, find_lookalikes

AGENT = Actor("alice", Role.AGENT)


@pytest.fixture
def customers(ctx: ServiceContext) -> CustomerService:
    return CustomerService(ctx)


def test_same_email_ignoring_case_names_the_customer(customers: CustomerService) -> None:
    ada = customers.create(AGENT, "Ada Lovelace", ["ada@example.com"]).customer
    customers.create(AGENT, "Grace Hopper", ["grace@example.com"])
    [alike] = find_lookalikes(customers, AGENT, "A. Lovelace", [" ADA@example.com "])
    assert (alike.customer.id, alike.customer.name) == (ada.id, "Ada Lovelace")
    assert alike.reason == "same email ADA@example.com"


def test_same_phone_of_any_type_in_any_format(customers: CustomerService) -> None:
    home = customers.create(AGENT, "Ada at home", [], [PhoneInput("+14155550101", "HOME")])
    [alike] = find_lookalikes(customers, AGENT, "Someone", [], ["(415) 555-0101"])
    assert alike.customer.id == home.customer.id
    assert alike.reason == "same phone (415) 555-0101"


def test_same_name_counts_only_without_contact_data(customers: CustomerService) -> None:
    ada = customers.create(AGENT, "Ada  Lovelace").customer
    customers.create(AGENT, "Ada Lovelace-Byron")  # contains the name, is not the same name
    [alike] = find_lookalikes(customers, AGENT, " ada lovelace ")
    assert alike.customer.id == ada.id
    assert alike.reason == "same name, and the new profile has no email or phone"
    assert find_lookalikes(customers, AGENT, "Ada Lovelace", ["new.ada@example.com"]) == []


def test_nothing_alike_and_bad_values_are_left_to_create(customers: CustomerService) -> None:
    customers.create(AGENT, "Ada Lovelace", ["ada@example.com"])
    assert find_lookalikes(customers, AGENT, "Grace Hopper", ["grace@example.com"]) == []
    assert find_lookalikes(customers, AGENT, "Grace Hopper", ["not an email"],
                           ["12"]) == []


def test_each_customer_once_contact_match_first_and_at_most_a_few(
        customers: CustomerService) -> None:
    ada = customers.create(AGENT, "Ada", ["ada@example.com"],
                           [PhoneInput("+14155550101", "HOME")]).customer
    alikes = find_lookalikes(customers, AGENT, "Ada", ["ada@example.com"], ["+14155550101"])
    assert [(a.customer.id, a.reason) for a in alikes] == [(ada.id, "same email ada@example.com")]
    for _ in range(MAX_LOOKALIKES + 2):
        customers.create(SYSTEM, "Twin", [], [PhoneInput("+14155550199", "HOME")])
    assert len(find_lookalikes(customers, AGENT, "X", [], ["+14155550199"])) == MAX_LOOKALIKES


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.SUPPORT_LEAD])
def test_only_roles_that_create_customers_ask(customers: CustomerService, role: Role) -> None:
    with pytest.raises(PermissionDenied):
        find_lookalikes(customers, Actor("someone", role), "Ada")
