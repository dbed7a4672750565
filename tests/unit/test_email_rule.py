"""One email normalisation: the auto-link rule compares what ``normalize_email`` stores."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from linker.contract import CustomerProfile, validate_response
from linker.core.autolink import Outcome, decide
from linker.core.identity import normalize_email, try_normalize_email


def returned(*emails: str) -> CustomerProfile:
    payload = {"results": [{"externalCustomerId": "7",
                            "emails": [{"original": e} for e in emails]}]}
    return validate_response(payload).results[0]


def test_a_full_width_address_matches_its_stored_form() -> None:
    stored = normalize_email("Ann\uff20Example.com")  # what the profile holds
    assert stored == "ann@example.com"
    assert decide([stored], [], {"email"}, [returned(" ANN@example.COM ")]).outcome is (
        Outcome.LINKED)
    assert decide([stored], [], {"email"}, [returned("ann\uff20example.com")]).outcome is (
        Outcome.LINKED)


def test_a_returned_value_that_is_no_address_never_matches() -> None:
    assert decide(["ann@example.com"], [], {"email"},
                  [returned("ann@example.com\u200b")]).outcome is Outcome.NO_FIELD_MATCH


variants = st.sampled_from([str.upper, str.lower, str.title, lambda e: f"  {e} ",
                            lambda e: e.replace("@", "\uff20")])


@given(local=st.from_regex(r"[a-z]{1,8}", fullmatch=True), vary=variants)
def test_the_rule_links_exactly_when_the_normalised_forms_are_equal(local: str, vary: object
                                                                     ) -> None:
    profile = normalize_email(f"{local}@example.com")
    value = vary(f"{local}@Example.com")  # type: ignore[operator]
    decision = decide([profile], [], {"email"}, [returned(value)])
    assert (decision.outcome is Outcome.LINKED) == (try_normalize_email(value) == profile)
    assert decision.outcome is Outcome.LINKED
