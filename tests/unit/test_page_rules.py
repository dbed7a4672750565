"""Rules that used to live in pages, now below them (issue 7 item 5): outcome wording shared by
the CLI and the console, and "held by another profile" on a search hit."""

from __future__ import annotations

import pytest

from linker.core.autolink import Outcome
from linker.core.outcomes import WOULD_LINK, outcome_label
from linker.services.linking import SystemHit


@pytest.mark.parametrize(("outcome", "words"), [
    ("linked", "linked"), ("no_match", "no match"), ("no_field_match", "no field match"),
    ("ambiguous", "ambiguous"), ("error", "error")])
def test_outcomes_read_as_words(outcome: str, words: str) -> None:
    assert outcome_label(outcome) == words


def test_a_dry_run_would_link_and_nothing_else_changes() -> None:
    assert outcome_label("linked", dry_run=True) == WOULD_LINK == "would link"
    others = [o.value for o in Outcome if o is not Outcome.LINKED]
    assert [outcome_label(o, dry_run=True) for o in others] == [outcome_label(o) for o in others]


def hit(linked_customer_id: str | None, linked_customer: str | None = None) -> SystemHit:
    return SystemHit(1, "Shop", "R-1", {}, linked_customer_id, linked_customer)


def test_a_record_held_by_another_profile_names_it() -> None:
    assert hit("c2", "Ada (id c2)").held_by_another("c1") == "Ada (id c2)"
    assert hit("c2").held_by_another("c1") == "c2"


def test_a_free_record_or_this_profiles_own_is_not_held_by_another() -> None:
    assert hit(None).held_by_another("c1") is None
    assert hit("c1", "Me (id c1)").held_by_another("c1") is None
