"""Contact normalisation: emails (trimmed, lower-case) and phones (E.164)."""

from __future__ import annotations

from typing import Any

import pytest

from linker.core.identity import (
    DEFAULT_REGION,
    InvalidContact,
    PhoneType,
    normalize_email,
    normalize_phone,
    parse_phone_type,
    try_normalize_email,
    try_normalize_phone,
)

# --------------------------------------------------------------------------------------------
# emails


class TestNormalizeEmail:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("martha.williams@gmail.com", "martha.williams@gmail.com"),
            ("Martha.Williams@Gmail.COM", "martha.williams@gmail.com"),
            ("  ada@example.com  ", "ada@example.com"),
            ("\tADA@EXAMPLE.CO.UK\n", "ada@example.co.uk"),
            ("first+tag@sub.example.org", "first+tag@sub.example.org"),
            ("josé@exämple.com", "josé@exämple.com"),
        ],
    )
    def test_valid(self, value: str, expected: str) -> None:
        assert normalize_email(value) == expected

    def test_idempotent(self) -> None:
        once = normalize_email(" Ada@Example.com ")
        assert normalize_email(once) == once

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("", "empty"),
            ("   ", "empty"),
            ("ada.example.com", "exactly one '@'"),
            ("a@b@example.com", "exactly one '@'"),
            ("ada lovelace@example.com", "whitespace"),
            ("ada@exa mple.com", "whitespace"),
            ("ada\t@example.com", "whitespace"),
            ("@example.com", "name@domain.tld"),
            ("ada@", "name@domain.tld"),
            ("ada@localhost", "name@domain.tld"),
            ("ada@.example.com", "name@domain.tld"),
            ("ada@example.", "name@domain.tld"),
            ("ada@example..com", "name@domain.tld"),
        ],
    )
    def test_invalid_with_clear_message(self, value: str, reason: str) -> None:
        with pytest.raises(InvalidContact) as excinfo:
            normalize_email(value)
        message = str(excinfo.value)
        assert "not an email address" in message
        assert reason in message
        if value.strip():
            assert repr(value) in message  # says which value was wrong

    @pytest.mark.parametrize("value", [None, 42, ["a@b.com"]])
    def test_non_text_is_invalid_not_a_crash(self, value: Any) -> None:
        with pytest.raises(InvalidContact, match="expected text"):
            normalize_email(value)

    def test_invalid_contact_is_a_value_error(self) -> None:
        assert issubclass(InvalidContact, ValueError)

    def test_try_normalize_email(self) -> None:
        assert try_normalize_email(" Ada@Example.com") == "ada@example.com"
        assert try_normalize_email("not-an-email") is None
        assert try_normalize_email("a@b@c.com") is None
        assert try_normalize_email(None) is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# phones


class TestNormalizePhone:
    def test_default_region_is_us(self) -> None:
        assert DEFAULT_REGION == "US"

    @pytest.mark.parametrize(
        "value",
        [
            "4155552671",
            "415-555-2671",
            "(415) 555-2671",
            "415.555.2671",
            "415 555 2671",
            "1 415 555 2671",
            "+1 (415) 555-2671",
            "+14155552671",
            "  +1-415-555-2671  ",
            "tel:+1-415-555-2671",
        ],
    )
    def test_us_formats_to_e164(self, value: str) -> None:
        assert normalize_phone(value) == "+14155552671"

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("+44 7911 123456", "+447911123456"),
            ("+44 (0)20 7946 0958", "+442079460958"),
            ("+44-20-7946-0958", "+442079460958"),
            ("+49 30 123456", "+4930123456"),
            ("011 44 7911 123456", "+447911123456"),  # US international prefix
        ],
    )
    def test_international_to_e164(self, value: str, expected: str) -> None:
        assert normalize_phone(value) == expected

    @pytest.mark.parametrize(
        ("value", "region", "expected"),
        [
            ("07911 123456", "GB", "+447911123456"),
            ("07911 123456", "gb", "+447911123456"),
            ("030 123456", "DE", "+4930123456"),
            ("+14155552671", "GB", "+14155552671"),  # a leading + ignores the region
        ],
    )
    def test_national_numbers_in_another_region(
        self, value: str, region: str, expected: str
    ) -> None:
        assert normalize_phone(value, region) == expected

    def test_national_number_of_another_country_is_invalid_in_us(self) -> None:
        with pytest.raises(InvalidContact):
            normalize_phone("07911 123456")

    @pytest.mark.parametrize("value", ["12", "+1 555 0100", "+15551234567", "+44 12", "999"])
    def test_invalid_numbers(self, value: str) -> None:
        with pytest.raises(InvalidContact) as excinfo:
            normalize_phone(value)
        assert repr(value) in str(excinfo.value)
        assert "not a valid phone number" in str(excinfo.value)

    @pytest.mark.parametrize("value", ["", "   ", "abc", "phone"])
    def test_not_a_number_at_all(self, value: str) -> None:
        with pytest.raises(InvalidContact, match="is not a phone number"):
            normalize_phone(value)

    def test_unknown_region(self) -> None:
        with pytest.raises(InvalidContact, match="region"):
            normalize_phone("4155552671", "ZZ")

    @pytest.mark.parametrize("value", [None, 4155552671])
    def test_non_text_is_invalid_not_a_crash(self, value: Any) -> None:
        with pytest.raises(InvalidContact, match="expected text"):
            normalize_phone(value)

    def test_invalid_message_example_is_itself_valid(self) -> None:
        with pytest.raises(InvalidContact) as excinfo:
            normalize_phone("12")
        example = str(excinfo.value).rsplit("e.g. ", 1)[1].rstrip(")")
        assert normalize_phone(example) == example

    def test_idempotent(self) -> None:
        once = normalize_phone("(415) 555-2671")
        assert normalize_phone(once) == once

    def test_try_normalize_phone(self) -> None:
        assert try_normalize_phone("(415) 555-2671") == "+14155552671"
        assert try_normalize_phone("07911 123456", "GB") == "+447911123456"
        assert try_normalize_phone("12") is None
        assert try_normalize_phone("abc") is None
        assert try_normalize_phone(None) is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# phone types


class TestParsePhoneType:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("MOBILE", PhoneType.MOBILE),
            ("mobile", PhoneType.MOBILE),
            ("Mobile", PhoneType.MOBILE),
            (" HOME ", PhoneType.HOME),
            ("office", PhoneType.OFFICE),
            ("OTHER", PhoneType.OTHER),
        ],
    )
    def test_known(self, value: str, expected: PhoneType) -> None:
        assert parse_phone_type(value) is expected

    @pytest.mark.parametrize("value", ["", "CELL", "WORK", "PAGER", None, 1, ["MOBILE"], True])
    def test_unknown(self, value: Any) -> None:
        assert parse_phone_type(value) is None

    def test_phone_type_values(self) -> None:
        assert [t.value for t in PhoneType] == ["MOBILE", "HOME", "OFFICE", "OTHER"]
        assert PhoneType.MOBILE == "MOBILE"
