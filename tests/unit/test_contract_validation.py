"""validate_response: good, sloppy and broken adaptor responses (contract section 3)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linker.contract import (
    Action,
    CustomerProfile,
    Email,
    Phone,
    RequestKind,
    Severity,
    Transaction,
    TransactionType,
    ValidationResult,
    Violation,
    validate_response,
)
from linker.core.identity import PhoneType

# --------------------------------------------------------------------------------------------
# helpers


def warnings_at(result: ValidationResult) -> dict[str, str]:
    """path -> message of every WARNING (one per path in these tests)."""
    found = [v for v in result.violations if v.severity is Severity.WARNING]
    by_path = {v.path: v.message for v in found}
    assert len(by_path) == len(found), f"several warnings on one path: {found}"
    return by_path


def errors_at(result: ValidationResult) -> list[str]:
    """Paths of every ERROR, in order."""
    return [v.path for v in result.errors]


def one_result(**fields: Any) -> dict[str, Any]:
    """A response with one result: externalCustomerId "c-1" plus ``fields``."""
    return {"results": [{"externalCustomerId": "c-1", **fields}]}


SHOP_RECORD: dict[str, Any] = {
    "externalCustomerId": "cus_8812",
    "name": "Martha Williams",
    "address": "221B Baker Street, London NW1 6XE",
    "emails": [{"original": "martha.williams@gmail.com"}, {"original": "mw@work.example"}],
    "phones": [
        {"original": "+15013299800", "type": "MOBILE"},
        {"original": "+15013299801", "type": "HOME"},
        {"original": "+15013299802", "type": "OFFICE"},
    ],
    "customAttributes": {"points": "1200", "tier": "Gold ⭐", "lifetimeValue": "$1,840.00"},
    "transactions": [
        {
            "type": "ORDER",
            "orderNumber": "#1001",
            "orderStatus": "FULFILLED",
            "orderTotal": "$50.00",
            "currencyCode": "USD",
            "createdAt": "2024-03-01T10:15:00Z",
            "orderLink": "https://shop.example/admin/orders/1001",
            "customerOrderUrl": "https://shop.example/orders/1001",
            "note": "Leave at the door",
            "itemCount": 2,
            "billingAddress": {
                "name": "Martha Williams",
                "street1": "221B Baker Street",
                "city": "London",
                "country": "GB",
                "zip": "NW1 6XE",
            },
            "products": [
                {
                    "id": "li_1",
                    "name": "Apple Pie",
                    "sku": "PIE-APL",
                    "productId": "p_9",
                    "status": "FULFILLED",
                    "quantity": 2,
                    "unitPrice": "$25.00",
                    "total": "$50.00",
                    "imageUrl": "https://cdn.example/pie.png",
                }
            ],
            "fulfillments": [
                {
                    "productIds": ["li_1"],
                    "estimatedDeliveryDate": "2024-03-04",
                    "trackingUrl": "https://carrier.example/t/ZX1",
                    "trackingNumber": "ZX1",
                    "status": "IN_TRANSIT",
                    "carrier": "UPS",
                    "shippingSpeed": "Ground",
                    "shippingAddress": {"city": "London", "country": "GB"},
                }
            ],
            "actions": [{"name": "Cancel order", "formUrl": "/action?order=1001"}],
        },
        {
            "type": "FLIGHT",
            "confirmationCode": "QX7Y2P",
            "departure": "SFO",
            "arrival": "JFK",
            "departureTime": "2024-05-01T08:00:00-07:00",
        },
        {"type": "STAY", "confirmationCode": "H-55", "property": "Sea View", "nights": "3"},
        {"type": "SUBSCRIPTION", "plan": "Monthly box", "status": "ACTIVE", "renewsAt": "2024-06"},
        {"type": "GENERIC", "key": "value"},
    ],
    "actions": [{"name": "Add loyalty points", "formUrl": "https://shop.example/action/points"}],
}


# --------------------------------------------------------------------------------------------
# GOOD responses: no violations, typed fields right


class TestGoodResponses:
    def test_empty_results_is_a_valid_no_match(self) -> None:
        result = validate_response({"results": []})
        assert result.violations == []
        assert result.results == []
        assert result.ok

    def test_full_shop_record_has_no_violations(self) -> None:
        result = validate_response({"results": [SHOP_RECORD]})
        assert result.violations == []
        assert result.ok
        assert len(result.results) == 1

    def test_full_shop_record_is_valid_as_detailed(self) -> None:
        result = validate_response({"results": [SHOP_RECORD]}, kind=RequestKind.DETAILED)
        assert result.violations == []

    def test_validation_does_not_modify_the_payload(self) -> None:
        payload = {"results": [copy.deepcopy(SHOP_RECORD)]}
        validate_response(payload)
        assert payload == {"results": [SHOP_RECORD]}

    def test_profile_fields_are_typed(self) -> None:
        profile = validate_response({"results": [SHOP_RECORD]}).results[0]
        assert isinstance(profile, CustomerProfile)
        assert profile.external_customer_id == "cus_8812"
        assert profile.name == "Martha Williams"
        assert profile.address == "221B Baker Street, London NW1 6XE"
        assert profile.emails == (
            Email(original="martha.williams@gmail.com"),
            Email(original="mw@work.example"),
        )
        assert profile.phones == (
            Phone(original="+15013299800", type=PhoneType.MOBILE),
            Phone(original="+15013299801", type=PhoneType.HOME),
            Phone(original="+15013299802", type=PhoneType.OFFICE),
        )
        assert profile.custom_attributes == {
            "points": "1200",
            "tier": "Gold ⭐",
            "lifetimeValue": "$1,840.00",
        }
        assert profile.actions == (
            Action(name="Add loyalty points", formUrl="https://shop.example/action/points"),
        )
        assert profile.extra == {}

    def test_transaction_types_and_labels(self) -> None:
        profile = validate_response({"results": [SHOP_RECORD]}).results[0]
        assert [t.type for t in profile.transactions] == [
            TransactionType.ORDER,
            TransactionType.FLIGHT,
            TransactionType.STAY,
            TransactionType.SUBSCRIPTION,
            TransactionType.GENERIC,
        ]
        assert [t.type.label for t in profile.transactions] == [
            "Orders",
            "Reservations",
            "Stays",
            "Subscriptions",
            "Transaction",
        ]
        assert all(t.original_type is None for t in profile.transactions)

    def test_order_keeps_products_fulfillments_and_actions_as_sent(self) -> None:
        order = validate_response({"results": [SHOP_RECORD]}).results[0].transactions[0]
        sent = SHOP_RECORD["transactions"][0]
        assert "type" not in order.fields
        assert order.get("orderNumber") == "#1001"
        assert order.get("itemCount") == 2
        assert order.get("products") == sent["products"]
        assert order.get("fulfillments")[0]["productIds"] == ["li_1"]
        assert order.get("billingAddress")["city"] == "London"
        assert order.get("actions") == [{"name": "Cancel order", "formUrl": "/action?order=1001"}]
        assert order.get("missing", "fallback") == "fallback"
        assert order.to_wire() == sent

    def test_other_transaction_types_keep_their_fields(self) -> None:
        flight, stay, subscription, generic = (
            validate_response({"results": [SHOP_RECORD]}).results[0].transactions[1:]
        )
        assert flight.get("confirmationCode") == "QX7Y2P"
        assert stay.get("nights") == "3"
        assert subscription.get("status") == "ACTIVE"
        assert generic.fields == {"key": "value"}
        assert generic.to_wire() == {"type": "GENERIC", "key": "value"}

    def test_minimal_result_has_empty_defaults(self) -> None:
        result = validate_response(one_result())
        assert result.violations == []
        profile = result.results[0]
        assert profile.name is None
        assert profile.address is None
        assert profile.emails == ()
        assert profile.phones == ()
        assert profile.custom_attributes == {}
        assert profile.transactions == ()
        assert profile.actions == ()

    def test_null_optional_fields_are_accepted(self) -> None:
        result = validate_response(
            one_result(name=None, emails=None, phones=None, customAttributes=None, actions=None)
        )
        assert result.violations == []
        assert result.results[0].name is None

    def test_empty_string_custom_attribute_clears_without_warning(self) -> None:
        result = validate_response(one_result(customAttributes={"points": ""}))
        assert result.violations == []
        assert result.results[0].custom_attributes == {"points": ""}

    def test_unknown_top_level_keys_are_kept_as_extra(self) -> None:
        result = validate_response(one_result(orderCount="3", vip=True))
        assert result.violations == []
        assert result.results[0].extra == {"orderCount": "3", "vip": True}

    def test_several_basic_results_keep_their_order(self) -> None:
        payload = {"results": [{"externalCustomerId": str(i)} for i in range(5)]}
        result = validate_response(payload, kind=RequestKind.SEARCH)
        assert result.violations == []
        assert [p.external_customer_id for p in result.results] == ["0", "1", "2", "3", "4"]

    def test_violation_as_dict(self) -> None:
        violation = Violation("results", "boom", Severity.WARNING)
        assert violation.as_dict() == {"path": "results", "message": "boom", "severity": "warning"}
        assert Violation("$", "x").severity is Severity.ERROR


# --------------------------------------------------------------------------------------------
# SLOPPY responses: results kept, WARNING violations with exact paths


class TestSloppyResponses:
    def test_number_custom_attribute_is_read_as_text(self) -> None:
        result = validate_response(one_result(customAttributes={"points": 100, "ratio": 0.5}))
        assert result.ok
        assert result.results[0].custom_attributes == {"points": "100", "ratio": "0.5"}
        warnings = warnings_at(result)
        assert set(warnings) == {
            "results[0].customAttributes.points",
            "results[0].customAttributes.ratio",
        }
        assert "should be a string" in warnings["results[0].customAttributes.points"]

    def test_integral_float_loses_its_point(self) -> None:
        result = validate_response(one_result(customAttributes={"points": 100.0}))
        assert result.results[0].custom_attributes == {"points": "100"}

    def test_boolean_custom_attribute_is_read_as_json_text(self) -> None:
        result = validate_response(one_result(customAttributes={"vip": True, "banned": False}))
        assert result.results[0].custom_attributes == {"vip": "true", "banned": "false"}
        assert set(warnings_at(result)) == {
            "results[0].customAttributes.vip",
            "results[0].customAttributes.banned",
        }

    def test_numeric_external_customer_id_is_read_as_text(self) -> None:
        result = validate_response({"results": [{"externalCustomerId": 42}]})
        assert result.ok
        assert result.results[0].external_customer_id == "42"
        assert list(warnings_at(result)) == ["results[0].externalCustomerId"]

    def test_numeric_name_is_read_as_text(self) -> None:
        result = validate_response(one_result(name=7))
        assert result.results[0].name == "7"
        assert list(warnings_at(result)) == ["results[0].name"]

    def test_phone_without_type_is_other(self) -> None:
        result = validate_response(one_result(phones=[{"original": "+15013299800"}]))
        assert result.ok
        assert result.results[0].phones == (Phone(original="+15013299800", type=PhoneType.OTHER),)
        warnings = warnings_at(result)
        assert list(warnings) == ["results[0].phones[0].type"]
        assert "OTHER" in warnings["results[0].phones[0].type"]

    def test_lower_case_phone_type_is_understood(self) -> None:
        result = validate_response(one_result(phones=[{"original": "+1", "type": "mobile"}]))
        assert result.results[0].phones[0].type is PhoneType.MOBILE
        warnings = warnings_at(result)
        assert list(warnings) == ["results[0].phones[0].type"]
        assert "upper case" in warnings["results[0].phones[0].type"]

    def test_unknown_phone_type_is_other(self) -> None:
        result = validate_response(one_result(phones=[{"original": "+1", "type": "PAGER"}]))
        assert result.ok
        assert result.results[0].phones[0].type is PhoneType.OTHER
        warnings = warnings_at(result)
        assert list(warnings) == ["results[0].phones[0].type"]
        assert "PAGER" in warnings["results[0].phones[0].type"]

    def test_phone_as_plain_string_is_read_as_original(self) -> None:
        result = validate_response(one_result(phones=["+15013299800"]))
        assert result.results[0].phones == (Phone(original="+15013299800"),)
        assert set(warnings_at(result)) == {"results[0].phones[0]", "results[0].phones[0].type"}

    def test_numeric_phone_original_is_read_as_text(self) -> None:
        result = validate_response(one_result(phones=[{"original": 15013299800, "type": "HOME"}]))
        assert result.results[0].phones == (Phone(original="15013299800", type=PhoneType.HOME),)
        assert list(warnings_at(result)) == ["results[0].phones[0].original"]

    def test_nested_custom_attributes_are_flattened_into_dotted_keys(self) -> None:
        result = validate_response(
            one_result(
                customAttributes={
                    "tier": "Gold",
                    "loyalty": {"points": 100, "level": {"name": "Gold", "since": "2020"}},
                }
            )
        )
        assert result.ok
        assert result.results[0].custom_attributes == {
            "tier": "Gold",
            "loyalty.points": "100",
            "loyalty.level.name": "Gold",
            "loyalty.level.since": "2020",
        }
        warnings = warnings_at(result)
        assert list(warnings) == ["results[0].customAttributes.loyalty"]
        assert "dotted keys" in warnings["results[0].customAttributes.loyalty"]

    def test_list_custom_attribute_is_joined_as_text(self) -> None:
        result = validate_response(
            one_result(customAttributes={"tags": ["vip", 2, True, None, {"a": 1}]})
        )
        assert result.results[0].custom_attributes == {"tags": 'vip, 2, true, {"a":1}'}
        assert list(warnings_at(result)) == ["results[0].customAttributes.tags"]

    def test_null_custom_attribute_is_read_as_empty(self) -> None:
        result = validate_response(one_result(customAttributes={"points": None, "tier": "Gold"}))
        assert result.ok
        assert result.results[0].custom_attributes == {"points": "", "tier": "Gold"}
        warnings = warnings_at(result)
        assert list(warnings) == ["results[0].customAttributes.points"]
        assert '""' in warnings["results[0].customAttributes.points"]

    def test_emails_as_plain_strings(self) -> None:
        result = validate_response(one_result(emails=["a@example.com", "b@example.com"]))
        assert result.ok
        assert result.results[0].emails == (
            Email(original="a@example.com"),
            Email(original="b@example.com"),
        )
        assert set(warnings_at(result)) == {"results[0].emails[0]", "results[0].emails[1]"}

    def test_single_email_string_instead_of_list(self) -> None:
        result = validate_response(one_result(emails="a@example.com"))
        assert result.results[0].emails == (Email(original="a@example.com"),)
        warnings = warnings_at(result)
        assert set(warnings) == {"results[0].emails", "results[0].emails[0]"}
        assert "list" in warnings["results[0].emails"]

    def test_single_object_instead_of_list(self) -> None:
        result = validate_response(
            one_result(
                emails={"original": "a@example.com"},
                phones={"original": "+1", "type": "MOBILE"},
                transactions={"type": "ORDER", "orderNumber": "1"},
                actions={"name": "Refund", "formUrl": "/refund"},
            )
        )
        assert result.ok
        profile = result.results[0]
        assert profile.emails == (Email(original="a@example.com"),)
        assert profile.phones == (Phone(original="+1", type=PhoneType.MOBILE),)
        assert profile.transactions[0].get("orderNumber") == "1"
        assert profile.actions == (Action(name="Refund", formUrl="/refund"),)
        assert set(warnings_at(result)) == {
            "results[0].emails",
            "results[0].phones",
            "results[0].transactions",
            "results[0].actions",
        }

    def test_unknown_transaction_type_is_kept_as_generic(self) -> None:
        result = validate_response(one_result(transactions=[{"type": "RETURN", "returnId": "R-9"}]))
        assert result.ok
        transaction = result.results[0].transactions[0]
        assert transaction.type is TransactionType.GENERIC
        assert transaction.original_type == "RETURN"
        assert transaction.fields == {"returnId": "R-9"}
        assert transaction.to_wire() == {"type": "RETURN", "returnId": "R-9"}
        warnings = warnings_at(result)
        assert list(warnings) == ["results[0].transactions[0].type"]
        assert "RETURN" in warnings["results[0].transactions[0].type"]

    def test_transaction_without_type_is_generic(self) -> None:
        result = validate_response(one_result(transactions=[{"orderNumber": "1"}]))
        transaction = result.results[0].transactions[0]
        assert transaction.type is TransactionType.GENERIC
        assert transaction.original_type is None
        assert list(warnings_at(result)) == ["results[0].transactions[0].type"]

    def test_lower_case_transaction_type_is_understood_with_a_warning(self) -> None:
        result = validate_response(one_result(transactions=[{"type": "order"}]))
        transaction = result.results[0].transactions[0]
        assert transaction.type is TransactionType.ORDER
        assert transaction.original_type is None
        assert list(warnings_at(result)) == ["results[0].transactions[0].type"]

    def test_duplicate_external_customer_id(self) -> None:
        payload = {
            "results": [
                {"externalCustomerId": "a"},
                {"externalCustomerId": "b"},
                {"externalCustomerId": "a", "name": "again"},
            ]
        }
        result = validate_response(payload)
        assert result.ok
        assert [p.external_customer_id for p in result.results] == ["a", "b", "a"]
        warnings = warnings_at(result)
        assert list(warnings) == ["results[2].externalCustomerId"]
        assert "results[0]" in warnings["results[2].externalCustomerId"]

    def test_number_and_string_ids_that_read_the_same_are_duplicates(self) -> None:
        result = validate_response(
            {"results": [{"externalCustomerId": 7}, {"externalCustomerId": "7"}]}
        )
        assert "results[1].externalCustomerId" in warnings_at(result)

    def test_every_sloppy_violation_is_a_warning(self) -> None:
        result = validate_response(
            {
                "results": [
                    {
                        "externalCustomerId": 1,
                        "emails": ["a@example.com"],
                        "phones": [{"original": "+1", "type": "mobile"}, {"original": "+2"}],
                        "customAttributes": {"n": 1, "x": None, "deep": {"a": "b"}},
                        "transactions": [{"type": "weird"}],
                    },
                    {"externalCustomerId": "1"},
                ]
            }
        )
        assert len(result.results) == 2
        assert result.errors == []
        assert len(result.violations) == 9


# --------------------------------------------------------------------------------------------
# BROKEN responses: ERROR violations


class TestBrokenResponses:
    @pytest.mark.parametrize("body", [None, [], [{"externalCustomerId": "1"}], "results", 3, True])
    def test_body_not_an_object(self, body: Any) -> None:
        result = validate_response(body)
        assert not result.ok
        assert result.results == []
        assert errors_at(result) == ["$"]
        assert "object" in result.errors[0].message

    def test_results_missing(self) -> None:
        result = validate_response({"customers": []})
        assert errors_at(result) == ["results"]
        assert '{"results": []}' in result.errors[0].message

    def test_results_null(self) -> None:
        result = validate_response({"results": None})
        assert errors_at(result) == ["results"]
        assert "null" in result.errors[0].message

    @pytest.mark.parametrize("value", [{"externalCustomerId": "1"}, "1", 1])
    def test_results_not_a_list(self, value: Any) -> None:
        result = validate_response({"results": value})
        assert errors_at(result) == ["results"]
        assert result.results == []
        assert "list" in result.errors[0].message

    @pytest.mark.parametrize("item", ["c-1", 5, None, ["c-1"]])
    def test_result_not_an_object(self, item: Any) -> None:
        result = validate_response({"results": [{"externalCustomerId": "ok"}, item]})
        assert errors_at(result) == ["results[1]"]
        assert [p.external_customer_id for p in result.results] == ["ok"]

    @pytest.mark.parametrize(
        "bad",
        [
            {},
            {"externalCustomerId": None},
            {"externalCustomerId": ""},
            {"externalCustomerId": "  "},
        ],
        ids=["missing", "null", "empty", "blank"],
    )
    def test_missing_or_empty_external_customer_id_drops_the_result(
        self, bad: dict[str, Any]
    ) -> None:
        payload = {
            "results": [
                {"externalCustomerId": "a"},
                {"externalCustomerId": "b"},
                {"name": "No Id", **bad},
            ]
        }
        result = validate_response(payload)
        assert not result.ok
        assert errors_at(result) == ["results[2].externalCustomerId"]
        assert "cannot be linked" in result.errors[0].message
        assert [p.external_customer_id for p in result.results] == ["a", "b"]

    @pytest.mark.parametrize("value", [{"id": 1}, ["a"]])
    def test_external_customer_id_of_wrong_type_is_one_error(self, value: Any) -> None:
        result = validate_response({"results": [{"externalCustomerId": value}]})
        assert errors_at(result) == ["results[0].externalCustomerId"]
        assert result.results == []

    @pytest.mark.parametrize(
        "action",
        [
            {"name": "Refund"},
            {"name": "Refund", "formUrl": ""},
            {"name": "Refund", "formUrl": None},
            {"formUrl": "/refund"},
            {"name": "Refund", "formUrl": {"url": "/refund"}},
            "Refund",
        ],
        ids=["no-formUrl", "empty-formUrl", "null-formUrl", "no-name", "object-formUrl", "string"],
    )
    def test_action_without_form_url_or_name_is_dropped(self, action: Any) -> None:
        good = {"name": "Add points", "formUrl": "/points"}
        result = validate_response(one_result(actions=[good, action]))
        assert not result.ok
        assert "results[0].actions[1]" in errors_at(result)
        assert result.results[0].actions == (Action(name="Add points", formUrl="/points"),)

    def test_email_without_original_is_dropped(self) -> None:
        result = validate_response(
            one_result(emails=[{"original": "a@example.com"}, {"primary": True}, {"original": ""}])
        )
        assert errors_at(result) == [
            "results[0].emails[1].original",
            "results[0].emails[2].original",
        ]
        assert result.results[0].emails == (Email(original="a@example.com"),)

    def test_phone_without_original_or_of_wrong_type_is_dropped(self) -> None:
        result = validate_response(
            one_result(phones=[{"type": "MOBILE"}, True, 1.5, {"original": ["+1"], "type": "HOME"}])
        )
        assert errors_at(result) == [
            "results[0].phones[0].original",
            "results[0].phones[1]",
            "results[0].phones[2]",
            "results[0].phones[3].original",
        ]
        assert result.results[0].phones == ()

    @pytest.mark.parametrize("value", ["gold", ["gold"], 5])
    def test_custom_attributes_not_an_object(self, value: Any) -> None:
        result = validate_response(one_result(customAttributes=value))
        assert errors_at(result) == ["results[0].customAttributes"]
        assert result.results[0].custom_attributes == {}

    def test_transaction_not_an_object_is_dropped(self) -> None:
        result = validate_response(one_result(transactions=[{"type": "ORDER"}, "ORDER"]))
        assert errors_at(result) == ["results[0].transactions[1]"]
        assert len(result.results[0].transactions) == 1

    def test_name_of_wrong_type_is_ignored_but_result_kept(self) -> None:
        result = validate_response(one_result(name={"first": "Ada"}))
        assert errors_at(result) == ["results[0].name"]
        assert result.results[0].name is None

    @pytest.mark.parametrize("count", [0, 2])
    def test_detailed_needs_exactly_one_result(self, count: int) -> None:
        payload = {"results": [{"externalCustomerId": str(i)} for i in range(count)]}
        result = validate_response(payload, kind=RequestKind.DETAILED)
        assert errors_at(result) == ["results"]
        assert f"got {count}" in result.errors[0].message
        assert len(result.results) == count

    @pytest.mark.parametrize("kind", [None, RequestKind.AUTOLINK, RequestKind.SEARCH])
    def test_basic_kinds_accept_any_number_of_results(self, kind: RequestKind | None) -> None:
        for count in (0, 2):
            payload = {"results": [{"externalCustomerId": str(i)} for i in range(count)]}
            assert validate_response(payload, kind=kind).ok

    def test_detailed_with_one_result_without_id(self) -> None:
        result = validate_response({"results": [{"name": "x"}]}, kind=RequestKind.DETAILED)
        assert errors_at(result) == ["results[0].externalCustomerId"]
        assert result.results == []


# --------------------------------------------------------------------------------------------
# never raises

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
# response-shaped: known keys with arbitrary values, so the deeper checks run too
KEYS = st.sampled_from(
    [
        "externalCustomerId",
        "name",
        "address",
        "emails",
        "phones",
        "customAttributes",
        "transactions",
        "actions",
        "original",
        "type",
        "formUrl",
    ]
)
SHAPED_RESULT = st.dictionaries(KEYS | st.text(max_size=4), JSON_VALUES, max_size=8)
SHAPED_RESPONSES = st.fixed_dictionaries({"results": st.lists(SHAPED_RESULT, max_size=4)})


def assert_well_formed(result: ValidationResult) -> None:
    assert isinstance(result, ValidationResult)
    for violation in result.violations:
        assert isinstance(violation.path, str) and violation.path.strip()
        assert isinstance(violation.message, str) and violation.message.strip()
        assert violation.severity in (Severity.ERROR, Severity.WARNING)
        # the safety net in validate_response is for non-JSON input only
        assert "could not be read" not in violation.message
    for profile in result.results:
        assert profile.external_customer_id.strip()
        assert all(isinstance(v, str) for v in profile.custom_attributes.values())


class TestNeverRaises:
    @settings(max_examples=300, deadline=None)
    @given(payload=JSON_VALUES, kind=st.none() | st.sampled_from(list(RequestKind)))
    def test_arbitrary_json(self, payload: Any, kind: RequestKind | None) -> None:
        assert_well_formed(validate_response(payload, kind=kind))

    @settings(max_examples=300, deadline=None)
    @given(payload=SHAPED_RESPONSES, kind=st.none() | st.sampled_from(list(RequestKind)))
    def test_response_shaped_json(self, payload: dict[str, Any], kind: RequestKind | None) -> None:
        result = validate_response(payload, kind=kind)
        assert_well_formed(result)
        assert len(result.results) <= len(payload["results"])

    @settings(max_examples=100, deadline=None)
    @given(payload=SHAPED_RESPONSES)
    def test_accepted_results_survive_a_json_round_trip(self, payload: dict[str, Any]) -> None:
        # a valid JSON body (NaN aside) is validated the same way after decoding
        text = json.dumps(payload)
        first = validate_response(payload)
        second = validate_response(json.loads(text))
        assert [v.path for v in first.violations] == [v.path for v in second.violations]

    def test_non_json_input_is_reported_not_raised(self) -> None:
        # not JSON (an int key), but the promise still holds: an error, the result dropped
        result = validate_response(
            {"results": [{"externalCustomerId": "1", "customAttributes": {1: "x"}}]}
        )
        assert result.results == []
        assert errors_at(result) == ["results[0]"]


# --------------------------------------------------------------------------------------------
# CustomerProfile.attribute: values for search-results columns


class TestProfileAttribute:
    @pytest.fixture
    def profile(self) -> CustomerProfile:
        result = validate_response(
            {
                "results": [
                    {
                        "externalCustomerId": "c-7",
                        "name": "Ada",
                        "address": "1 Main St",
                        "emails": [{"original": "ada@x.example"}, {"original": "ada@y.example"}],
                        "phones": [{"original": "+15550001", "type": "MOBILE"}],
                        "customAttributes": {"points": "100", "loyalty": {"tier": "Gold"}},
                        "orderCount": 3,
                    }
                ]
            }
        )
        return result.results[0]

    @pytest.mark.parametrize(
        ("key", "expected"),
        [
            ("externalCustomerId", "c-7"),
            ("name", "Ada"),
            ("address", "1 Main St"),
            ("email", "ada@x.example"),
            ("emails", "ada@x.example, ada@y.example"),
            ("phone", "+15550001"),
            ("phones", "+15550001"),
            ("points", "100"),
            ("loyalty.tier", "Gold"),
            ("orderCount", 3),
            ("nothing", None),
        ],
    )
    def test_columns(self, profile: CustomerProfile, key: str, expected: Any) -> None:
        assert profile.attribute(key) == expected

    def test_empty_profile_columns_are_none(self) -> None:
        profile = CustomerProfile(externalCustomerId="e")
        for key in ("name", "address", "email", "emails", "phone", "phones", "points"):
            assert profile.attribute(key) is None, key

    def test_profile_fields_win_over_custom_attributes(self) -> None:
        profile = CustomerProfile(
            externalCustomerId="e",
            name="Real",
            customAttributes={"name": "Fake", "x": "cx"},
            extra={"x": "ex"},
        )
        assert profile.attribute("name") == "Real"
        assert profile.attribute("x") == "cx"

    def test_transaction_model_defaults(self) -> None:
        transaction = Transaction(type=TransactionType.STAY)
        assert transaction.fields == {}
        assert transaction.to_wire() == {"type": "STAY"}
