"""Grouping search results per person (linker.core.grouping), without a database."""

from __future__ import annotations

from typing import Any

from linker.contract import CustomerProfile, validate_response
from linker.core.grouping import group_hits


def _result(external_id: str, **fields: Any) -> CustomerProfile:
    payload = {"results": [{"externalCustomerId": external_id, **fields}]}
    return validate_response(payload).results[0]


def test_no_hits_no_groups() -> None:
    assert group_hits([]) == []


def test_a_chain_across_three_systems_is_one_person() -> None:
    a = _result("a", emails=[{"original": "ada@example.com"}])
    b = _result("b", emails=[{"original": "ADA@example.com"}],
                phones=[{"original": "+14155550199", "type": "MOBILE"}])
    c = _result("c", phones=[{"original": "(415) 555-0199", "type": "MOBILE"}])
    assert group_hits([(1, a), (2, b), (3, c)]) == [[0, 1, 2]]


def test_an_invalid_email_or_a_name_alone_never_groups() -> None:
    a = _result("a", name="Ada", emails=[{"original": "not an address"}])
    b = _result("b", name="Ada", emails=[{"original": "not an address"}])
    assert group_hits([(1, a), (2, b)]) == [[0], [1]]


def test_groups_keep_the_order_of_first_appearance() -> None:
    lone = _result("x", emails=[{"original": "x@example.com"}])
    a = _result("a", emails=[{"original": "a@example.com"}])
    b = _result("b", emails=[{"original": "a@example.com"}])
    assert group_hits([(1, lone), (1, a), (2, b)]) == [[0], [1, 2]]
