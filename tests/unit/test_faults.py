"""Parsing fault profiles and the pure result/body transforms behind them."""

from __future__ import annotations

import json
import random

import pytest

from linker.adaptor import FAULTS, Fault, FaultPlan, parse_fault
from linker.adaptor.faults import (
    duplicate_results,
    missing_id,
    nested_attributes,
    numeric_values,
    twin_id,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("latency:200", Fault("latency", 200)),
    ("jitter:50", Fault("jitter", 50)),
    (" Error-Rate:0.25 ", Fault("error-rate", 0.25)),
    ("error-rate:1", Fault("error-rate", 1)),
    ("status:503", Fault("status", 503)),
    ("oversize:64", Fault("oversize", 64)),
    ("hang", Fault("hang")),
    ("malformed-json", Fault("malformed-json")),
    ("redirect", Fault("redirect")),
])
def test_parse_good_faults(text: str, expected: Fault) -> None:
    assert parse_fault(text) == expected


def test_every_documented_fault_parses_and_prints_back() -> None:
    for name, spec in FAULTS.items():
        text = name if spec.arg is None else f"{name}:{503 if name == 'status' else 1}"
        fault = parse_fault(text)
        assert fault.name == name
        assert str(fault) == text
    assert str(parse_fault("error-rate:0.5")) == "error-rate:0.5"


@pytest.mark.parametrize(("text", "message"), [
    ("slow", "unknown fault 'slow'"),
    ("", "unknown fault"),
    ("hang:3", "takes no argument"),
    ("latency", "needs an argument"),
    ("latency:", "needs an argument"),
    ("latency:abc", "needs a number"),
    ("latency:-1", ">= 0"),
    ("latency:nan", "finite"),
    ("error-rate:1.5", "between 0 and 1"),
    ("status:99", "200..599"),
    ("status:500.5", "200..599"),
    ("oversize:0", "above 0"),
])
def test_parse_bad_faults(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(text)


def test_unknown_fault_message_lists_valid_faults() -> None:
    with pytest.raises(ValueError) as caught:
        parse_fault("explode")
    for listed in ("latency:MS", "jitter:MS", "error-rate:FRACTION", "status:CODE", "hang",
                   "oversize:KB", "redirect", "numeric-values"):
        assert listed in str(caught.value)


RESULT = {
    "externalCustomerId": "shop-00042",
    "name": "Ana Lopez",
    "phones": [{"original": "+14152345678", "type": "MOBILE"}],
    "customAttributes": {"totalSpent": "$1,204.50", "orderCount": "4",
                         "customerSince": "2023-01-02"},
    "transactions": [{"type": "ORDER", "orderNumber": "#1042", "orderTotal": "$84.00",
                      "itemCount": "2", "products": [{"quantity": "2", "sku": "LS-100"}],
                      "fulfillments": [{"trackingNumber": "123456"}]}],
}


def test_numeric_values_turns_numbers_into_numbers_only() -> None:
    out = numeric_values(RESULT)
    assert out["externalCustomerId"] == 42
    assert out["customAttributes"] == {"totalSpent": 1204.5, "orderCount": 4,
                                       "customerSince": "2023-01-02"}
    order = out["transactions"][0]
    assert order["orderTotal"] == 84.0
    assert order["itemCount"] == 2
    assert order["orderNumber"] == "#1042"
    assert order["products"][0] == {"quantity": 2, "sku": "LS-100"}
    assert order["fulfillments"][0]["trackingNumber"] == "123456"
    assert out["phones"] == RESULT["phones"]
    assert RESULT["externalCustomerId"] == "shop-00042"  # input left alone


def test_nested_attributes_and_missing_id() -> None:
    nested = nested_attributes(RESULT, "shop")
    assert nested["customAttributes"] == {"shop": RESULT["customAttributes"]}
    assert "externalCustomerId" not in missing_id(RESULT)
    assert missing_id(RESULT)["name"] == "Ana Lopez"


def test_duplicate_results_use_distinct_ids_even_as_numbers() -> None:
    doubled = duplicate_results([RESULT])
    assert [r["externalCustomerId"] for r in doubled] == ["shop-00042", "shop-900042"]
    assert twin_id("abc") == "abc-dup"
    plan = FaultPlan([Fault("duplicate-results"), Fault("numeric-values")])
    ids = [r["externalCustomerId"] for r in plan.transform([RESULT], "shop")]
    assert ids == [42, 900042]


def test_plan_encodes_oversize_and_malformed_bodies() -> None:
    payload = {"results": [RESULT]}
    padded = FaultPlan([Fault("oversize", 8)]).encode(payload)
    assert len(padded) >= 8 * 1024
    assert json.loads(padded)["results"] == [RESULT]
    broken = FaultPlan([Fault("malformed-json")]).encode(payload)
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)
    assert FaultPlan([]).encode(payload) == FaultPlan([Fault("hang")]).encode(payload)


def test_plan_delays_and_forced_statuses() -> None:
    plan = FaultPlan([Fault("latency", 100), Fault("jitter", 50)])
    expected = 100 + random.Random(5).uniform(0, 50)
    assert plan.delay_ms(random.Random(5)) == expected
    assert FaultPlan([]).delay_ms(random.Random(5)) == 0
    assert FaultPlan([Fault("status", 418)]).forced_status(random.Random(1)) == 418
    assert FaultPlan([Fault("error-rate", 0)]).forced_status(random.Random(1)) is None
    rng = random.Random(2)
    statuses = {FaultPlan([Fault("error-rate", 1)]).forced_status(rng) for _ in range(40)}
    assert statuses == {500, 503}


def test_last_occurrence_of_a_fault_wins() -> None:
    plan = FaultPlan([Fault("latency", 100), Fault("latency", 20)])
    assert plan.arg("latency") == 20
    assert plan.has("latency") and not plan.has("hang")
    assert FaultPlan([Fault("json-as-html")]).media_type() == "text/html"
    assert FaultPlan([]).media_type() == "application/json"


class _Fixed(random.Random):
    """A generator whose every draw is ``value`` (to decide rate faults both ways)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_rate_faults_hang_or_cut_the_drawn_share_only() -> None:
    plan = FaultPlan([parse_fault("hang-rate:0.1"), parse_fault("malformed-rate:0.2")])
    assert plan.hangs(_Fixed(0.05)) and not plan.hangs(_Fixed(0.5))
    assert plan.malformed(_Fixed(0.15)) and not plan.malformed(_Fixed(0.5))
    payload = {"results": [{"externalCustomerId": "shop-00001"}]}
    whole = plan.encode(payload, truncate=False)
    assert json.loads(whole) == payload
    with pytest.raises(json.JSONDecodeError):
        json.loads(plan.encode(payload, truncate=True))
    assert not FaultPlan([]).hangs(_Fixed(0.0)) and not FaultPlan([]).malformed(_Fixed(0.0))
    assert FaultPlan([Fault("hang")]).hangs(_Fixed(0.99))
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_fault("hang-rate:2")


def test_slow_drip_takes_milliseconds_between_bytes() -> None:
    assert FaultPlan([parse_fault("slow-drip:250")]).drip_interval_s() == 0.25
    assert FaultPlan([]).drip_interval_s() is None
    with pytest.raises(ValueError, match="milliseconds >= 0"):
        parse_fault("slow-drip:-1")
