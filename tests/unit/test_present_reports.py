"""Pure formatting of the Health, Coverage and Audit log pages."""

from __future__ import annotations

from datetime import UTC, datetime

from dashboard.present import audit_change, chart_text, last_error_line


def test_chart_text_shows_plotly_markup_as_text() -> None:
    assert chart_text('<a href="javascript:x">Shop</a> & co\nnext') == (
        '&lt;a href="javascript:x"&gt;Shop&lt;/a&gt; &amp; co next')


def test_last_error_line_cuts_long_messages() -> None:
    at = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert last_error_line("timeout", at, 7, "slow") == (
        "Last error: timeout at 2026-11-27 12:00:00 UTC (exchange 7): slow")
    long = last_error_line("http_status", at, 8, "x" * 500, limit=20)
    assert long.endswith(": " + "x" * 19 + "…")


def test_audit_change_lists_changed_added_and_removed_keys() -> None:
    assert audit_change({"timeout_s": 5.0, "name": "Shop"}, {"timeout_s": 2.5, "name": "Shop"}
                        ) == "timeout_s: 5.0 → 2.5"
    assert audit_change(None, {"integration": "Shop", "ids": [1, 2]}) == (
        'integration: Shop; ids: [1, 2]')
    assert audit_change({"method": "auto"}, None) == "method: auto → (none)"
    assert audit_change(None, None) == "(no details)"
