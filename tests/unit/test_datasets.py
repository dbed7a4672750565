"""The reference adaptor's seeded datasets: determinism, sizes, overlap and planted edge cases."""

from __future__ import annotations

import re

import pytest

from linker.adaptor import (
    DATASET_NAMES,
    build_dataset,
    load_dataset,
    people,
    population_size,
)
from linker.core.identity import normalize_phone


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_same_seed_gives_the_same_records(name: str) -> None:
    first = build_dataset(name, 60, seed=3)
    second = build_dataset(name, 60, seed=3)
    assert first is not second
    assert first.records == second.records
    assert build_dataset(name, 60, seed=4).records != first.records


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_size_and_default_size(name: str) -> None:
    assert len(load_dataset(name).records) == 300
    assert len(build_dataset(name, 25).records) == 25
    assert len(build_dataset(name, 1).records) == 1


def test_scales_to_ten_thousand_records_with_unique_ids() -> None:
    dataset = build_dataset("shop", 10_000)
    ids = [r.external_customer_id for r in dataset.records]
    assert len(ids) == 10_000
    assert len(set(ids)) == 10_000


def test_unknown_dataset_and_bad_size_are_refused() -> None:
    with pytest.raises(ValueError, match="shop, loyalty, travel"):
        load_dataset("crm")
    with pytest.raises(ValueError, match="at least 1"):
        load_dataset("shop", 0)


def test_load_dataset_reuses_the_built_instance() -> None:
    assert load_dataset("loyalty", 40) is load_dataset(" Loyalty ", 40)


@pytest.mark.parametrize(("name", "pattern"), [
    ("shop", r"shop-\d{5}"), ("loyalty", r"L-\d{6}"), ("travel", r"T-\d{5}")])
def test_external_ids_follow_each_system_format(name: str, pattern: str) -> None:
    assert all(re.fullmatch(pattern, r.external_customer_id)
               for r in load_dataset(name).records)


def test_population_is_stable_across_sizes_and_seeded() -> None:
    small, large = people(50), people(200)
    assert len(small) == population_size(50) == 100
    assert large[:100] == small
    assert people(50, seed=8) != small
    dataset = load_dataset("travel")
    assert people(dataset) == dataset.population


def test_population_contacts_are_unique_and_phones_normalise() -> None:
    population = people(300)
    emails = [p.email for p in population] + [p.work_email for p in population]
    assert len(set(emails)) == len(emails)
    phones = [p.mobile for p in population] + [p.home_phone for p in population if p.home_phone]
    assert len(set(phones)) == len(phones)
    assert all(normalize_phone(phone) == phone for phone in phones)
    assert {p.country for p in population} == {"US", "GB"}


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_record_phone_normalises_to_its_e164(name: str) -> None:
    for record in load_dataset(name).records:
        for phone in record.phones:
            assert normalize_phone(phone.original) == phone.e164


def test_shop_phones_need_normalising() -> None:
    originals = [p.original for r in load_dataset("shop").records for p in r.phones]
    assert originals
    assert all(" " in original for original in originals)


def test_datasets_overlap_through_shared_people_and_emails() -> None:
    members = {name: set(load_dataset(name).members()) for name in DATASET_NAMES}
    assert members["shop"] & members["loyalty"]
    assert members["loyalty"] & members["travel"]
    everywhere = members["shop"] & members["loyalty"] & members["travel"]
    assert everywhere
    nowhere = set(range(population_size(300))) - set().union(*members.values())
    assert nowhere
    emails = {name: {e for r in load_dataset(name).records for e in r.emails}
              for name in DATASET_NAMES}
    assert emails["shop"] & emails["loyalty"] & emails["travel"]


def test_some_records_carry_only_the_work_email() -> None:
    dataset = load_dataset("loyalty")
    population = dataset.population
    work_only = [r for r in dataset.records
                 if r.emails == (population[r.person_index].work_email,)]
    assert work_only
    person = population[work_only[0].person_index]
    assert dataset.search(emails=[person.email]) == []
    with_phone = next(r for r in work_only if r.phones)
    assert with_phone in dataset.search(phones=[with_phone.phones[0].e164])


def test_shop_has_duplicate_accounts_sharing_an_email() -> None:
    dataset = load_dataset("shop")
    duplicates = [r for r in dataset.records if r.duplicate_of]
    assert len(duplicates) == 300 // 40
    for duplicate in duplicates:
        primary = dataset.get(duplicate.duplicate_of or "")
        assert primary is not None
        assert duplicate.emails[0] == primary.emails[0]
        assert duplicate.emails[0] in dataset.duplicate_emails()
        found = dataset.search(emails=[duplicate.emails[0].upper()])
        assert {r.external_customer_id for r in found} >= {
            primary.external_customer_id, duplicate.external_customer_id}


def test_shop_has_archived_orders_unreachable_by_order_number() -> None:
    dataset = load_dataset("shop")
    archived = dataset.archived_order_numbers()
    assert len(archived) >= 10
    for number in archived:
        assert dataset.search(order_numbers=[number]) == []
    owner = next(r for r in dataset.records if r.archived_orders)
    statuses = {t["orderNumber"]: t["orderStatus"] for t in owner.detailed()["transactions"]}
    assert all(statuses[n] == "ARCHIVED" for n in owner.archived_orders)
    live = next(r for r in dataset.records if r.order_numbers())
    number = live.order_numbers()[0]
    assert live in dataset.search(order_numbers=[number])
    assert live in dataset.search(order_numbers=[number.lstrip("#")])


def test_shop_orders_have_the_contract_fields() -> None:
    orders = [t for r in load_dataset("shop").records for t in r.transactions]
    assert orders
    for order in orders:
        assert order["type"] == "ORDER"
        assert re.fullmatch(r"#\d{4,}", order["orderNumber"])
        assert {"orderStatus", "orderTotal", "currencyCode", "createdAt", "orderLink",
                "itemCount", "products", "fulfillments"} <= set(order)
        assert order["products"]
    assert any(order["fulfillments"] for order in orders)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_custom_attribute_values_are_strings(name: str) -> None:
    for record in load_dataset(name).records:
        assert record.custom_attributes
        assert all(isinstance(v, str) for v in record.custom_attributes.values())


def test_loyalty_members_have_tiers_and_generic_rewards() -> None:
    records = load_dataset("loyalty").records
    assert {r.custom_attributes["tier"] for r in records} <= {"Bronze", "Silver", "Gold",
                                                              "Platinum"}
    rewards = [t for r in records for t in r.transactions]
    assert rewards
    assert all(t["type"] == "GENERIC" and t["points"].lstrip("-").isdigit() for t in rewards)


def test_travel_has_only_mobile_phones_and_flights() -> None:
    records = load_dataset("travel").records
    assert all(len(r.phones) == 1 and r.phones[0].type == "MOBILE" for r in records)
    flights = [t for r in records for t in r.transactions]
    assert flights
    keys = {"confirmationCode", "airline", "flightNumber", "origin", "destination",
            "departureAt", "arrivalAt", "status", "seat", "cabin"}
    assert all(t["type"] == "FLIGHT" and keys <= set(t) for t in flights)
    assert all(t["origin"] != t["destination"] for t in flights)


def test_name_search_needs_three_characters_and_no_other_key() -> None:
    dataset = load_dataset("shop")
    record = dataset.records[0]
    assert record in dataset.search(name=record.name.upper())
    assert record in dataset.search(name=f"  {record.name[1:6].lower()} ")
    assert dataset.search(name=record.name[:2]) == []
    assert dataset.search(emails=["nobody@example.com"], name=record.name) == []
