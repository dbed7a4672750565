"""Request builders and the request envelope (contract sections 1.3 and 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from linker.contract import (
    LookupLevel,
    LookupRequest,
    RequestKind,
    autolink_request,
    detailed_request,
    encode_json,
    request_kind,
    search_request,
)

# the values behind the published "docs-detailed" signing vector
DOCS_VALUES: dict[str, Any] = {
    "customer_id": "o2sg-TMTSD2rTwMuxzewbA",
    "external_customer_id": "abc",
    "name": "Martha Williams",
    "emails": ["martha.williams@gmail.com"],
    "phones": ["+15013299800"],
    "custom_attributes": {
        "favoriteDate": "2018-08-19T07:00:00.000Z",
        "favoriteFood": "Apple Pie",
    },
}


def vector(vectors: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(v for v in vectors if v["name"] == name)


# --------------------------------------------------------------------------------------------
# auto-link


class TestAutolinkRequest:
    def test_envelope(self) -> None:
        request = autolink_request("g-1", "Ada", ["ada@x.example"], ["+14155552671"])
        assert request.lookup_level is LookupLevel.BASIC
        assert request.unique_match_required is False

    def test_query_has_arrays_name_and_id(self) -> None:
        request = autolink_request(
            "g-1", "Ada Lovelace", ["ada@x.example", "ada@y.example"], ["+14155552671"]
        )
        assert request.query == {
            "id": "g-1",
            "name": "Ada Lovelace",
            "emails": ["ada@x.example", "ada@y.example"],
            "phones": ["+14155552671"],
        }

    def test_primary_email_stays_first(self) -> None:
        request = autolink_request("g-1", None, ("primary@x.example", "other@x.example"), ())
        assert request.query["emails"] == ["primary@x.example", "other@x.example"]

    def test_single_email_is_still_an_array(self) -> None:
        request = autolink_request("g-1", None, ["ada@x.example"], [])
        assert request.query["emails"] == ["ada@x.example"]
        assert b'"emails":["ada@x.example"]' in request.body()

    @pytest.mark.parametrize("name", [None, ""])
    def test_keys_without_value_are_left_out(self, name: str | None) -> None:
        request = autolink_request("g-1", name, ["ada@x.example"], [])
        assert request.query == {"id": "g-1", "emails": ["ada@x.example"]}
        assert b"phones" not in request.body()
        assert b"name" not in request.body()

    def test_live_log_example_body(self) -> None:
        # contract 2.1, live example
        request = autolink_request(
            "Br1zuiBMTA-daPVl50x45w", "Yasir Sadeque", ["yasir@gladly.com"], []
        )
        assert request.body() == (
            b'{"lookupLevel":"BASIC","query":{"emails":["yasir@gladly.com"],'
            b'"id":"Br1zuiBMTA-daPVl50x45w","name":"Yasir Sadeque"},"uniqueMatchRequired":false}'
        )

    def test_kind(self) -> None:
        request = autolink_request("g-1", "Ada", [], ["+14155552671"])
        assert request_kind(request) is RequestKind.AUTOLINK


# --------------------------------------------------------------------------------------------
# basic search


class TestSearchRequest:
    def test_envelope(self) -> None:
        request = search_request("g-1", {"email": "a@b.example"})
        assert request.lookup_level is LookupLevel.BASIC
        assert request.unique_match_required is False

    def test_fields_are_scalar_strings_plus_id(self) -> None:
        request = search_request("594wMEbZSx-RmYSkUMeCPw", {"email": "person1@email.com"})
        assert request.query == {"email": "person1@email.com", "id": "594wMEbZSx-RmYSkUMeCPw"}
        assert request.body() == (
            b'{"lookupLevel":"BASIC","query":{"email":"person1@email.com",'
            b'"id":"594wMEbZSx-RmYSkUMeCPw"},"uniqueMatchRequired":false}'
        )

    def test_values_are_trimmed_and_stringified(self) -> None:
        request = search_request(None, {"email": "  a@b.example ", "points": 100})  # type: ignore[dict-item]
        assert request.query == {"email": "a@b.example", "points": "100"}
        assert all(isinstance(v, str) for v in request.query.values())

    def test_empty_and_missing_fields_are_left_out(self) -> None:
        fields: dict[str, Any] = {"email": "", "phone": "   ", "orderNumber": None, "name": "Ada"}
        request = search_request("g-1", fields)
        assert request.query == {"name": "Ada", "id": "g-1"}
        assert b"None" not in request.body()

    @pytest.mark.parametrize("customer_id", [None, ""])
    def test_without_customer_id_no_id_key(self, customer_id: str | None) -> None:
        request = search_request(customer_id, {"email": "a@b.example"})
        assert request.query == {"email": "a@b.example"}

    def test_kind_is_search_even_for_emails_key(self) -> None:
        # the Spree manual-search example sends "emails" as a plain string
        request = search_request("g-1", {"emails": "a@b.example", "phones": "666-666-666"})
        assert request.query["emails"] == "a@b.example"
        assert request_kind(request) is RequestKind.SEARCH


# --------------------------------------------------------------------------------------------
# detailed


class TestDetailedRequest:
    def test_envelope(self) -> None:
        request = detailed_request("g-1", "ext-1")
        assert request.lookup_level is LookupLevel.DETAILED
        assert request.unique_match_required is True
        assert request_kind(request) is RequestKind.DETAILED

    @pytest.mark.parametrize("external_id", ["ext-1", ""])
    def test_external_customer_id_is_always_sent(self, external_id: str) -> None:
        request = detailed_request(None, external_id)
        assert request.query == {"externalCustomerId": external_id}

    def test_full_query(self) -> None:
        request = detailed_request(
            "594wMEbZSx-RmYSkUMeCPw",
            "1",
            name="Person 1",
            emails=["person1@email.com", "hello@gladly.com"],
            phones=["+14151234567"],
            custom_attributes={"points": "100"},
        )
        assert request.query == {
            "externalCustomerId": "1",
            "id": "594wMEbZSx-RmYSkUMeCPw",
            "name": "Person 1",
            "emails": ["person1@email.com", "hello@gladly.com"],
            "phones": ["+14151234567"],
            "points": "100",
        }

    def test_custom_attributes_are_flat_top_level_keys(self) -> None:
        request = detailed_request(
            "g-1", "e-1", custom_attributes={"points": "100", "tier": "Gold"}
        )
        assert request.query["points"] == "100"
        assert request.query["tier"] == "Gold"
        assert "customAttributes" not in request.query

    def test_custom_attributes_never_override_reserved_keys(self) -> None:
        request = detailed_request(
            "g-1",
            "e-1",
            name="Real Name",
            emails=["real@x.example"],
            phones=["+14155552671"],
            custom_attributes={
                "id": "fake-id",
                "externalCustomerId": "fake-ext",
                "name": "Fake Name",
                "emails": "fake@x.example",
                "phones": "+10000000000",
                "points": "5",
            },
        )
        assert request.query == {
            "id": "g-1",
            "externalCustomerId": "e-1",
            "name": "Real Name",
            "emails": ["real@x.example"],
            "phones": ["+14155552671"],
            "points": "5",
        }

    def test_reserved_custom_attributes_do_not_fill_missing_values(self) -> None:
        request = detailed_request(
            None, "e-1", custom_attributes={"name": "Fake", "id": "fake", "emails": "f@x.example"}
        )
        assert request.query == {"externalCustomerId": "e-1"}

    def test_empty_values_are_left_out(self) -> None:
        request = detailed_request(
            None, "e-1", name="", emails=[], phones=(), custom_attributes={"points": ""}
        )
        assert request.query == {"externalCustomerId": "e-1"}

    def test_matches_the_docs_signing_vector(self, signing_vectors: list[dict[str, Any]]) -> None:
        expected = vector(signing_vectors, "docs-detailed")["body_utf8"].encode("utf-8")
        request = detailed_request(
            DOCS_VALUES["customer_id"],
            DOCS_VALUES["external_customer_id"],
            name=DOCS_VALUES["name"],
            emails=DOCS_VALUES["emails"],
            phones=DOCS_VALUES["phones"],
            custom_attributes=DOCS_VALUES["custom_attributes"],
        )
        assert request.body() == expected


# --------------------------------------------------------------------------------------------
# LookupRequest.body() and encode_json


class TestBody:
    def test_compact_and_sorted(self) -> None:
        request = LookupRequest(
            lookupLevel=LookupLevel.BASIC,
            query={"z": "1", "a": {"y": 1, "b": [3, 1]}},
            uniqueMatchRequired=False,
        )
        body = request.body()
        assert body == (
            b'{"lookupLevel":"BASIC","query":{"a":{"b":[3,1],"y":1},"z":"1"},'
            b'"uniqueMatchRequired":false}'
        )
        assert b" " not in body
        assert b"\n" not in body

    def test_non_ascii_is_raw_utf8(self) -> None:
        request = autolink_request("c-42", "José Müller 🚀", ["jose.muller@example.com"], [])
        body = request.body()
        assert "José Müller 🚀".encode() in body
        assert b"\\u" not in body
        assert json.loads(body.decode("utf-8"))["query"]["name"] == "José Müller 🚀"

    def test_matches_the_utf8_signing_vector(self, signing_vectors: list[dict[str, Any]]) -> None:
        expected = vector(signing_vectors, "utf8-basic-auth-query")["body_utf8"].encode("utf-8")
        request = autolink_request(
            "c-42", "José Müller 🚀", ["jose.muller@example.com"], ["+4915123456789"]
        )
        assert request.body() == expected

    def test_body_round_trips(self) -> None:
        request = detailed_request("g-1", "e-1", name="Ada", custom_attributes={"p": "1"})
        decoded = json.loads(request.body())
        assert decoded == {
            "lookupLevel": "DETAILED",
            "query": request.query,
            "uniqueMatchRequired": True,
        }
        assert LookupRequest.model_validate(decoded) == request

    def test_body_is_stable(self) -> None:
        first = search_request("g-1", {"b": "2", "a": "1"}).body()
        second = search_request("g-1", {"a": "1", "b": "2"}).body()
        assert first == second

    def test_encode_json(self) -> None:
        assert (
            encode_json({"b": 1, "a": ["é", None, True]}) == '{"a":["é",null,true],"b":1}'.encode()
        )

    def test_request_is_frozen(self) -> None:
        request = search_request("g-1", {"email": "a@b.example"})
        with pytest.raises(ValueError):
            request.lookup_level = LookupLevel.DETAILED


# --------------------------------------------------------------------------------------------
# request_kind and RequestKind


class TestRequestKind:
    @pytest.mark.parametrize(
        ("level", "query", "kind"),
        [
            ("DETAILED", {"externalCustomerId": "1"}, RequestKind.DETAILED),
            (
                "DETAILED",
                {"externalCustomerId": "1", "emails": ["a@b.example"]},
                RequestKind.DETAILED,
            ),
            ("BASIC", {"emails": ["a@b.example"], "id": "g"}, RequestKind.AUTOLINK),
            ("BASIC", {"phones": ["+14155552671"]}, RequestKind.AUTOLINK),
            ("BASIC", {"email": "a@b.example", "id": "g"}, RequestKind.SEARCH),
            ("BASIC", {"emails": "a@b.example"}, RequestKind.SEARCH),
            ("BASIC", {}, RequestKind.SEARCH),
        ],
    )
    def test_request_kind(self, level: str, query: dict[str, Any], kind: RequestKind) -> None:
        request = LookupRequest.model_validate(
            {"lookupLevel": level, "query": query, "uniqueMatchRequired": level == "DETAILED"}
        )
        assert request_kind(request) is kind

    @pytest.mark.parametrize(
        ("kind", "level"),
        [
            (RequestKind.AUTOLINK, LookupLevel.BASIC),
            (RequestKind.SEARCH, LookupLevel.BASIC),
            (RequestKind.DETAILED, LookupLevel.DETAILED),
        ],
    )
    def test_level_of_kind(self, kind: RequestKind, level: LookupLevel) -> None:
        assert kind.level is level

    def test_builders_agree_with_kind_level(self) -> None:
        built = {
            RequestKind.AUTOLINK: autolink_request("g", None, ["a@b.example"], []),
            RequestKind.SEARCH: search_request("g", {"email": "a@b.example"}),
            RequestKind.DETAILED: detailed_request("g", "e"),
        }
        for kind, request in built.items():
            assert request.lookup_level is kind.level
            assert request_kind(request) is kind
