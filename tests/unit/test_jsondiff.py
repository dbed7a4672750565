"""The JSON-aware body diff: paths of added, removed and changed values; text fallback."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from linker.jsondiff import Change, ChangeOp, diff_bodies, diff_values


def test_changed_added_and_removed_paths() -> None:
    old = {"results": [{"name": "Ann", "tier": "Gold", "emails": ["a@x.com"]}]}
    new = {"results": [{"name": "Anna", "emails": ["a@x.com", "b@x.com"], "points": "5"}]}
    diff = diff_bodies(json.dumps(old), json.dumps(new))
    assert diff.mode == "json"
    assert diff.changes == (
        Change("$.results[0].name", ChangeOp.CHANGED, "Ann", "Anna"),
        Change("$.results[0].tier", ChangeOp.REMOVED, "Gold", None),
        Change("$.results[0].emails[1]", ChangeOp.ADDED, None, "b@x.com"),
        Change("$.results[0].points", ChangeOp.ADDED, None, "5"),
    )
    assert diff.counts() == {"added": 2, "removed": 1, "changed": 1}


def test_key_order_and_whitespace_do_not_count() -> None:
    diff = diff_bodies('{"a": 1, "b": [1, 2]}', '{"b":[1,2],"a":1}')
    assert diff.mode == "json" and diff.same


def test_type_change_is_a_change_even_when_equal_in_python() -> None:
    assert diff_values({"n": 1}, {"n": True}) == [Change("$.n", ChangeOp.CHANGED, 1, True)]
    assert diff_values({"n": "1"}, {"n": 1}) == [Change("$.n", ChangeOp.CHANGED, "1", 1)]


def test_keys_that_are_not_names_are_quoted() -> None:
    assert diff_values({"a b": 1}, {"a b": 2})[0].path == '$["a b"]'


def test_non_json_falls_back_to_text_lines() -> None:
    diff = diff_bodies("<html>\nerror\n</html>", '{"results": []}')
    assert diff.mode == "text"
    assert "-error" in diff.text_lines and '+{"results": []}' in diff.text_lines
    assert diff_bodies("same text", "same text").same
    assert diff_bodies(None, "x").text_lines[-1] == "+x"


json_values: Any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                  max_size=4),
    max_leaves=20,
)


@given(json_values, json_values)
def test_no_changes_exactly_when_equal(old: Any, new: Any) -> None:
    changes = diff_values(old, new)
    assert (changes == []) == (json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True))


def test_bodies_nested_past_the_depth_cap_are_diffed_as_text() -> None:
    for depth in (490, 100_000):
        deep = '{"a":' + "[" * depth + "]" * depth + "}"
        diff = diff_bodies('{"a":[]}', deep)
        assert diff.mode == "text" and not diff.same



def test_an_added_path_has_no_before_and_a_removed_one_no_after() -> None:
    changed, removed, added = diff_values({"a": None, "gone": 1}, {"a": 2, "new": None})
    assert (added.op, added.has_before, added.has_after) == (ChangeOp.ADDED, False, True)
    assert (removed.op, removed.has_before, removed.has_after) == (ChangeOp.REMOVED, True, False)
    # a null that was really there is a value before
    assert (changed.op, changed.old, changed.has_before) == (ChangeOp.CHANGED, None, True)
