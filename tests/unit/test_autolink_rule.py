"""The auto-link decision rule of contract section 2.2 (pure function, no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linker.contract import CustomerProfile
from linker.core.autolink import Outcome, decide, describe_ambiguity

BOTH = {"email", "mobile"}


def result(ext: str, emails: tuple[str, ...] = (), phones: tuple[tuple[str, str], ...] = ()
           ) -> CustomerProfile:
    data: dict[str, Any] = {
        "externalCustomerId": ext,
        "emails": [{"original": e} for e in emails],
        "phones": [{"original": p, "type": t} for p, t in phones],
    }
    return CustomerProfile.model_validate(data)


def test_no_results_is_no_match() -> None:
    decision = decide(["ann@example.com"], [], BOTH, [])
    assert decision.outcome is Outcome.NO_MATCH
    assert decision.external_customer_id is None
    assert decision.candidates == 0
    assert "ann@example.com" in decision.reason


def test_unique_email_match_links() -> None:
    decision = decide(["ann@example.com"], [], {"email"}, [result("17", ("ann@example.com",))])
    assert decision.outcome is Outcome.LINKED
    assert decision.external_customer_id == "17"
    assert decision.candidates == 1
    assert "email ann@example.com" in decision.reason


def test_email_differing_in_case_and_spaces_links() -> None:
    decision = decide([" Ann@Example.COM"], [], {"email"},
                      [result("17", ("  ANN@example.com \t",))])
    assert decision.outcome is Outcome.LINKED
    assert decision.external_customer_id == "17"


def test_any_returned_email_may_match_any_profile_email() -> None:
    decision = decide(["main@example.com", "second@example.com"], [], {"email"},
                      [result("17", ("other@example.com", "Second@example.com"))])
    assert decision.outcome is Outcome.LINKED


@pytest.mark.parametrize("returned", ["(415) 555-2671", "+1 415 555 2671", "415.555.2671",
                                      "+14155552671", "1-415-555-2671"])
def test_mobile_match_in_different_formats(returned: str) -> None:
    decision = decide([], ["+14155552671"], {"mobile"}, [result("9", phones=((returned,
                                                                               "MOBILE"),))])
    assert decision.outcome is Outcome.LINKED, decision.reason
    assert decision.external_customer_id == "9"


def test_profile_mobile_in_national_format_is_compared_as_e164() -> None:
    decision = decide([], ["(415) 555-2671"], {"mobile"},
                      [result("9", phones=(("+14155552671", "MOBILE"),))])
    assert decision.outcome is Outcome.LINKED


@pytest.mark.parametrize("kind", ["HOME", "OFFICE", "OTHER"])
def test_non_mobile_phone_never_links(kind: str) -> None:
    decision = decide([], ["+14155552671"], {"mobile"},
                      [result("9", phones=(("+14155552671", kind),))])
    assert decision.outcome is Outcome.NO_FIELD_MATCH
    assert decision.external_customer_id is None
    assert f"+14155552671 is {kind}" in decision.reason
    assert "only MOBILE phones auto-link" in decision.reason


def test_phone_without_type_is_other_and_never_links() -> None:
    raw = CustomerProfile.model_validate({"externalCustomerId": "9",
                                          "phones": [{"original": "+14155552671"}]})
    assert decide([], ["+14155552671"], {"mobile"}, [raw]).outcome is Outcome.NO_FIELD_MATCH


def test_unparseable_returned_phone_never_matches() -> None:
    decision = decide([], ["+14155552671"], {"mobile"},
                      [result("9", phones=(("not a phone", "MOBILE"),))])
    assert decision.outcome is Outcome.NO_FIELD_MATCH


def test_two_results_are_ambiguous_and_name_the_shared_value() -> None:
    results = [result("7", ("ann@example.com",)), result("9", ("ANN@example.com",))]
    decision = decide(["ann@example.com"], [], BOTH, results)
    assert decision.outcome is Outcome.AMBIGUOUS
    assert decision.candidates == 2
    assert decision.external_customer_id is None
    assert decision.reason.startswith("2 results came back; auto-linking needs exactly one")
    assert "results 7 and 9 share the email ann@example.com" in decision.reason


def test_ambiguity_without_a_shared_value_lists_the_results() -> None:
    text = describe_ambiguity(["ann@example.com"], [], BOTH,
                              [result("7"), result("9"), result("11")])
    assert text == "results 7, 9 and 11 came back"


def test_one_result_without_matching_field_is_no_field_match() -> None:
    decision = decide(["ann@example.com"], ["+14155552671"], BOTH,
                      [result("5", ("bob@example.com",), (("+14155550000", "MOBILE"),))])
    assert decision.outcome is Outcome.NO_FIELD_MATCH
    assert decision.candidates == 1
    assert "bob@example.com" in decision.reason
    assert "ann@example.com" in decision.reason


def test_disabled_field_is_not_compared() -> None:
    email_only = decide([], ["+14155552671"], {"email"},
                        [result("9", phones=(("+14155552671", "MOBILE"),))])
    mobile_only = decide(["ann@example.com"], [], {"mobile"},
                         [result("9", ("ann@example.com",))])
    assert email_only.outcome is Outcome.NO_FIELD_MATCH
    assert mobile_only.outcome is Outcome.NO_FIELD_MATCH


def test_no_fields_is_skipped() -> None:
    decision = decide(["ann@example.com"], [], set(), [result("9", ("ann@example.com",))])
    assert decision.outcome is Outcome.SKIPPED


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown auto-linking field"):
        decide([], [], {"phone"}, [])


def test_outcome_values_are_the_recorded_names() -> None:
    assert [o.value for o in Outcome] == ["linked", "no_match", "ambiguous", "no_field_match",
                                         "conflict", "suppressed", "skipped", "error"]


emails = st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.com", fullmatch=True)


@given(profile=st.lists(emails, max_size=3), returned=st.lists(st.lists(emails, max_size=3),
                                                               max_size=4))
def test_links_only_a_single_result_sharing_an_email(profile: list[str],
                                                     returned: list[list[str]]) -> None:
    results = [result(str(i), tuple(es)) for i, es in enumerate(returned)]
    decision = decide(profile, [], {"email"}, results)
    should_link = len(results) == 1 and bool(set(returned[0]) & set(profile))
    assert (decision.outcome is Outcome.LINKED) == should_link
    assert (decision.external_customer_id is not None) == should_link
    assert decision.candidates == len(results)


def test_rule_sentence_names_the_fields_and_the_blockers() -> None:
    from linker.core.autolink import rule_sentence

    both = rule_sentence("Shop", active=True, enabled=True, fields=["email", "mobile"])
    assert "exactly one record" in both and "emails" in both and "MOBILE" in both
    assert "unlinked from Shop before" in both
    mobile = rule_sentence("Travel", active=True, enabled=True, fields=["mobile"])
    assert "MOBILE" in mobile and "emails" not in mobile
    assert "no field is chosen" in rule_sentence("X", active=True, enabled=True, fields=[])
    assert "is off" in rule_sentence("X", active=True, enabled=False, fields=["email"])
    assert "inactive" in rule_sentence("X", active=False, enabled=True, fields=["email"])
