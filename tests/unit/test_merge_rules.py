"""The data behaviour of a DETAILED refresh (contract section 4), without a database."""

from __future__ import annotations

from typing import Any

import pytest

from linker.contract import CustomerProfile, validate_response
from linker.core.identity import PhoneType
from linker.core.merge import (
    DroppedContact,
    NewEmail,
    NewPhone,
    ProfilePhone,
    ProfileValues,
    contact_keys,
    merge_custom_attributes,
    merge_detailed,
)

PROFILE = ProfileValues(
    name="Ada Lovelace",
    address="12 St James's Square, London",
    emails=frozenset({"ada@example.com"}),
    phones=(ProfilePhone("+14155550101", PhoneType.HOME),),
)


def result(**fields: Any) -> CustomerProfile:
    """The result as the lookup client reads it from an adaptor's answer."""
    return validate_response({"results": [{"externalCustomerId": "C-1", **fields}]}).results[0]


def merge(res: CustomerProfile, *, profile: ProfileValues = PROFILE,
          old: dict[str, str] | None = None, overwrite: bool = False,
          emails_held: dict[str, str] | None = None,
          mobiles_held: dict[str, str] | None = None) -> Any:
    return merge_detailed(profile, old or {}, res, overwrite_existing=overwrite,
                          emails_held_elsewhere=emails_held or {},
                          mobiles_held_elsewhere=mobiles_held or {})


class TestCustomAttributes:
    def test_returned_values_replace_old_ones(self) -> None:
        out = merge(result(customAttributes={"tier": "gold"}), old={"tier": "silver"})
        assert out.custom_attributes == {"tier": "gold"}

    def test_omitted_key_keeps_old_value(self) -> None:
        out = merge(result(customAttributes={"tier": "gold"}),
                    old={"tier": "silver", "points": "120"})
        assert out.custom_attributes == {"tier": "gold", "points": "120"}

    def test_empty_string_clears(self) -> None:
        out = merge(result(customAttributes={"points": ""}),
                    old={"tier": "silver", "points": "120"})
        assert out.custom_attributes == {"tier": "silver"}

    def test_empty_string_for_unknown_key_adds_nothing(self) -> None:
        assert merge_custom_attributes({}, {"x": ""}) == {}

    def test_no_custom_attributes_returned_keeps_all(self) -> None:
        out = merge(result(), old={"tier": "silver"})
        assert out.custom_attributes == {"tier": "silver"}


class TestTransactions:
    def test_replaced_in_wire_shape(self) -> None:
        out = merge(result(transactions=[{"type": "ORDER", "orderNumber": "1001"},
                                         {"type": "points", "value": "5"}]))
        assert out.transactions == [{"type": "ORDER", "orderNumber": "1001"},
                                    {"type": "points", "value": "5"}]

    def test_empty_list_means_no_transactions(self) -> None:
        assert merge(result(transactions=[])).transactions == []


class TestNameAndAddress:
    def test_kept_when_overwrite_off_and_profile_has_values(self) -> None:
        out = merge(result(name="A. King", address="Elsewhere"))
        assert (out.name, out.address) == (None, None)
        assert (out.pulled_name, out.pulled_address) == ("A. King", "Elsewhere")

    def test_overwritten_when_overwrite_on(self) -> None:
        out = merge(result(name="Augusta Ada King", address="Ockham Park"), overwrite=True)
        assert (out.name, out.address) == ("Augusta Ada King", "Ockham Park")

    @pytest.mark.parametrize("overwrite", [False, True])
    def test_blank_profile_value_filled(self, overwrite: bool) -> None:
        blank = ProfileValues("", "  ", frozenset(), ())
        out = merge(result(name=" Ada ", address="Ockham Park"), profile=blank,
                    overwrite=overwrite)
        assert (out.name, out.address) == ("Ada", "Ockham Park")

    def test_omitted_value_changes_nothing_even_with_overwrite(self) -> None:
        out = merge(result(), overwrite=True)
        assert (out.name, out.address) == (None, None)

    def test_same_value_is_no_change(self) -> None:
        assert merge(result(name="Ada Lovelace"), overwrite=True).name is None

    def test_empty_string_clears_only_with_overwrite(self) -> None:
        assert merge(result(address=""), overwrite=True).address == ""
        assert merge(result(address="")).address is None
        blank = ProfileValues("", "", frozenset(), ())
        assert merge(result(name=""), profile=blank).name is None


class TestEmails:
    def test_new_email_added_normalised(self) -> None:
        out = merge(result(emails=[{"original": " Ada.L@Example.org "}]))
        assert out.add_emails == (NewEmail("Ada.L@Example.org", "ada.l@example.org"),)
        assert out.dropped == ()

    def test_email_already_on_profile_differing_in_case_not_added(self) -> None:
        assert merge(result(emails=[{"original": "ADA@example.com "}])).add_emails == ()

    def test_email_held_by_another_profile_dropped_and_reported(self) -> None:
        out = merge(result(emails=[{"original": "Grace@Example.com"},
                                   {"original": "new@example.com"}]),
                    emails_held={"grace@example.com": "Grace Hopper (id c2)"})
        assert [e.normalized for e in out.add_emails] == ["new@example.com"]
        assert len(out.dropped) == 1
        assert out.dropped[0].value == "Grace@Example.com"
        assert out.dropped[0].kind == "email"
        assert "Grace Hopper (id c2)" in out.dropped[0].reason

    def test_invalid_email_dropped(self) -> None:
        out = merge(result(emails=[{"original": "not-an-email"}]))
        assert out.add_emails == ()
        assert out.dropped[0].value == "not-an-email"

    def test_duplicate_in_result_added_once(self) -> None:
        out = merge(result(emails=[{"original": "x@example.com"}, {"original": "X@example.com"}]))
        assert len(out.add_emails) == 1

    def test_emails_never_removed(self) -> None:
        out = merge(result(emails=[]))
        assert out.add_emails == () and out.dropped == ()


class TestPhones:
    def test_new_mobile_added_as_e164_with_type(self) -> None:
        out = merge(result(phones=[{"original": "(415) 555-0199", "type": "MOBILE"}]))
        assert out.add_phones == (NewPhone("(415) 555-0199", "+14155550199", PhoneType.MOBILE),)

    def test_existing_phone_type_never_changes(self) -> None:
        out = merge(result(phones=[{"original": "+1 415 555 0101", "type": "MOBILE"}]),
                    overwrite=True)
        assert out.add_phones == ()

    def test_mobile_held_by_another_profile_dropped(self) -> None:
        out = merge(result(phones=[{"original": "+14155550199", "type": "MOBILE"}]),
                    mobiles_held={"+14155550199": "Grace Hopper (id c2)"})
        assert out.add_phones == ()
        assert out.dropped == (DroppedContact(
            "+14155550199", "phone",
            "this mobile number already belongs to Grace Hopper (id c2); it was not added to "
            "this profile"),)

    def test_home_phone_not_checked_against_other_profiles(self) -> None:
        out = merge(result(phones=[{"original": "+14155550199", "type": "HOME"}]),
                    mobiles_held={"+14155550199": "Grace Hopper (id c2)"})
        assert [p.type for p in out.add_phones] == [PhoneType.HOME]

    def test_phone_without_type_is_other(self) -> None:
        out = merge(result(phones=[{"original": "+14155550199"}]))
        assert out.add_phones[0].type is PhoneType.OTHER

    def test_invalid_phone_dropped(self) -> None:
        out = merge(result(phones=[{"original": "12", "type": "MOBILE"}]))
        assert out.add_phones == ()
        assert out.dropped[0].kind == "phone"


def test_contact_keys_lists_emails_and_mobiles_only() -> None:
    keys = contact_keys(result(emails=[{"original": " A@B.com"}, {"original": "bad"}],
                               phones=[{"original": "415-555-0199", "type": "MOBILE"},
                                       {"original": "+14155550101", "type": "HOME"}]))
    assert keys.emails == frozenset({"a@b.com"})
    assert keys.mobiles == frozenset({"+14155550199"})


def test_dropped_contact_as_dict() -> None:
    assert DroppedContact("v", "email", "r").as_dict() == {"value": "v", "kind": "email",
                                                           "reason": "r"}
