"""The console's pure formatting (``dashboard.present``), without Streamlit."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from dashboard import present
from linker.services.customers import LinkView

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def link(name: str, external_id: str, active: bool = True) -> LinkView:
    return LinkView(1, name, external_id, "auto", "system", NOW, active)


def test_link_tooltip() -> None:
    assert present.link_tooltip(()) is None
    assert present.link_tooltip((link("Shop", "s-1"),)) == "Linked to Shop: external id s-1 (auto)"
    assert present.link_tooltip((link("Shop", "s-1"), link("Loyalty", "l-9", active=False))) == (
        "Linked to Shop (s-1); Loyalty (l-9, inactive)")


def test_pretty_body() -> None:
    assert present.pretty_body('{"a":[1]}') == ('{\n  "a": [\n    1\n  ]\n}', "json")
    assert present.pretty_body("<html>oops</html>") == ("<html>oops</html>", "text")
    assert present.pretty_body("") == ("(empty)", "text")
    deep = "[" * 5000 + "]" * 5000
    assert present.pretty_body(deep) == (deep, "text")


def test_badge_labels() -> None:
    assert present.badge_label("healthy") == "healthy"
    assert present.badge_label("no_field_match") == "no field match"
    assert present.label_style("no field match") == "color: #c9a400; font-weight: 600"
    assert present.label_style("linked") == "color: #21c354; font-weight: 600"
    assert present.label_style("something else") == "color: #1c83e1; font-weight: 600"


def test_text_escapes_images_links_html_and_directives() -> None:
    hostile = "![x](http://tracker.test/p.png) [click](http://evil.test) <img src=x> :red[hi]"
    escaped = present.text(hostile)
    for markup in (r"\!\[x\]\(http\:", r"\<img", r"\:red\[hi\]"):
        assert markup in escaped
    assert not re.search(r"(?<!\\)[!\[\]()<>:]", escaped)
    assert rendered_text(escaped).replace(present.WORD_JOINER, "") == hostile
    assert not GFM_URL_LITERAL.search(rendered_text(escaped))


def test_text_turns_line_breaks_into_spaces() -> None:
    assert present.text("a\n# heading\r\n---") == r"a \# heading \-\-\-"


GFM_URL_LITERAL = re.compile(r"(https?://|www(?=\.))([-.\w]+)", re.IGNORECASE | re.ASCII)
r"""remark-gfm's literal-autolink pattern as Streamlit 1.67's frontend bundle has it
(``/(https?:\/\/|www(?=\.))([-.\w]+)([^ \t\r\n]*)/gi``, run on text after escapes)."""


def rendered_text(escaped: str) -> str:
    """What a Markdown text node holds once escapes are resolved."""
    return UNESCAPE.sub(r"\1", escaped)


@given(st.text())
def test_text_reads_back_as_the_same_characters(value: str) -> None:
    escaped = present.text(value)
    readback = rendered_text(escaped).replace(present.WORD_JOINER, "")
    assert readback == re.sub(r"[\r\n\u2028\u2029\x0b\x0c\x85]+", " ",
                              value).replace(present.WORD_JOINER, "")
    assert not re.search(r"(?<!\\)[\[\]()<>`*_]", escaped)
    assert not GFM_URL_LITERAL.search(rendered_text(escaped))


@given(st.lists(st.sampled_from(["http", "HTTPS", "://", "www", "WwW", ".", "x", " ", ":",
                                 "/", "-", "_", "\u2060"]), max_size=12).map("".join))
def test_no_url_literal_survives_in_url_like_text(value: str) -> None:
    assert not GFM_URL_LITERAL.search(rendered_text(present.text(value)))


def test_bare_urls_get_a_word_joiner() -> None:
    joined = rendered_text(present.text("see http://evil.test/x or www.evil.test, WWW.a.b"))
    assert joined == ("see http://\u2060evil.test/x or www\u2060.evil.test, "
                      "WWW\u2060.a.b")


def test_transaction_title_escapes_adaptor_values() -> None:
    title, used = present.transaction_title(
        {"type": "ORDER", "orderNumber": "#1001", "orderStatus": "[shipped](http://x.test)",
         "orderTotal": "10.00 USD", "createdAt": "2026-01-02T10:00:00Z"})
    assert title.startswith(r"**Order \#1001** · ")
    assert "](" not in title
    assert used == {"orderNumber", "orderStatus", "orderTotal", "createdAt"}


def test_transaction_groups_and_labels() -> None:
    groups = present.group_transactions([{"type": "order"}, {"type": "FLIGHT"}, {}])
    assert list(groups) == ["ORDER", "FLIGHT", "GENERIC"]
    assert present.transaction_group_label("FLIGHT", 2) == "2 Reservations"
    assert present.transaction_group_label("CRUISE", 1) == "1 Cruise"


def test_code_span_holds_any_text_literally() -> None:
    assert present.code("shop-1") == "`shop-1`"
    assert present.code("a`b") == "``a`b``"
    assert present.code("`x`") == "`` `x` ``"
    assert present.code("a\nb") == "`a b`"
