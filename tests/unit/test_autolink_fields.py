"""The auto-link field vocabulary is one enum (linker.core.autolink.AutolinkField)."""

from __future__ import annotations

from dashboard.widgets import AUTOLINK_FIELD_LABELS
from linker.core.autolink import AutolinkField
from linker.core.integration_config import autolink_fields_of


def test_labels_and_needed_values_come_from_the_enum() -> None:
    assert AUTOLINK_FIELD_LABELS == {"email": "Email", "mobile": "Mobile phone"}
    assert AutolinkField.needed_values(["mobile"]) == "a MOBILE phone"
    assert AutolinkField.needed_values({"mobile", "email"}) == "an email or a MOBILE phone"
    assert AutolinkField.needed_values(["home"]) == "an email or a MOBILE phone"


def test_the_config_accepts_exactly_the_enum_values_in_enum_order() -> None:
    problems: dict[str, str] = {}
    assert autolink_fields_of(problems, [" MOBILE", "email"]) == ("email", "mobile")
    assert problems == {}
    autolink_fields_of(problems, ["home"])
    assert "home" in problems["autolink_fields"] and "email, mobile" in problems[
        "autolink_fields"]
