"""Pure formatting for the console: turns service views into the strings and rows the pages
show. No Streamlit here, so everything is unit-tested without a browser or AppTest.

Adaptor-controlled text (names, ids, attribute values, error bodies) reaches Markdown-rendering
elements only through ``text()``, which escapes every character Markdown, Streamlit's
directives or HTML could read as markup: a name like ``![x](http://tracker/p.png)`` is shown as
those characters and never loads anything.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from linker import safejson
from linker.services.customers import LinkView, SuppressionView
from linker.services.probes import ProbeStatus

# -- text that is never markup ----------------------------------------------------------------

_MARKUP = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&@])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
_AUTOLINK_STARTS = re.compile(r"(://|www(?=\.))", re.IGNORECASE)
WORD_JOINER = "\u2060"
"""The invisible separator ``text()`` puts after ``://`` and between ``www`` and ``.``."""


def text(value: object) -> str:
    """``value`` as a string that ``st.markdown`` (and captions, alerts, labels) shows
    literally: every ASCII punctuation mark Markdown, Streamlit directives (``:red[…]``,
    ``:material/…:``), LaTeX (``$``) or HTML entities could use is backslash-escaped, line
    breaks become spaces (no new block can start), and a ``WORD_JOINER`` follows every ``://``
    and splits every ``www.`` so no bare URL becomes a link.

    The joiner is needed because remark-gfm (Streamlit's Markdown) finds literal autolinks
    in text nodes *after* escapes are resolved, with ``/(https?:\\/\\/|www(?=\\.))([-.\\w]+)/gi``:
    the domain must follow ``://`` at once and ``www`` must touch its dot, and U+2060 (a
    format character, not ``\\w``, shown as nothing) breaks both."""
    joined = _AUTOLINK_STARTS.sub(lambda m: m.group(0) + WORD_JOINER, str(value))
    return _MARKUP.sub(r"\\\1", _LINE_BREAKS.sub(" ", joined))


def bold(value: object) -> str:
    """``value`` escaped with ``text`` and set in bold."""
    escaped = text(value)
    return f"**{escaped}**" if escaped else ""


def code(value: object) -> str:
    """``value`` as an inline code span that shows it literally (a fence longer than any run
    of backticks inside it; line breaks become spaces)."""
    content = _LINE_BREAKS.sub(" ", str(value))
    longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {content} " if content.startswith("`") or content.endswith("`") else content
    return f"{fence}{padded}{fence}"


# -- numbers and times ------------------------------------------------------------------------


def percent(value: float | None) -> str:
    """``0.953`` → ``95.3 %``; None → ``–``."""
    return "–" if value is None else f"{value * 100:.1f} %"


def millis(value: float | None) -> str:
    """``812.4`` → ``812 ms``; None → ``–``."""
    return "–" if value is None else f"{value:.0f} ms"


def when(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS UTC``; None → ``–``."""
    if value is None:
        return "–"
    return value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo else "")


# -- status labels ----------------------------------------------------------------------------

BADGE_COLORS: dict[str, str] = {
    # integration health
    "healthy": "green", "degraded": "orange", "failing": "red", "inactive": "gray",
    "untested": "blue",
    # auto-link outcomes
    "linked": "green", "would_link": "green", "no_match": "gray", "ambiguous": "orange",
    "no_field_match": "yellow", "conflict": "red", "suppressed": "violet", "skipped": "gray",
    "error": "red",
    # exchanges and checks
    "ok": "green", "failed": "red", "pass": "green", "warn": "orange", "fail": "red",
    # scheduled probes (degraded: as above)
    "passing": "green", "waiting": "blue", "off": "gray",
}
"""The badge colour of every status, outcome and result word (unknown words are blue)."""

BADGE_HEX = {"green": "#21c354", "orange": "#ff8c00", "yellow": "#c9a400", "red": "#ff4b4b",
             "violet": "#803df5", "gray": "#808495", "blue": "#1c83e1"}
"""The text colour of each badge colour, for charts and status cells in tables."""


def badge_color(value: str) -> str:
    """The colour name of ``value``'s badge (blue when unknown)."""
    return BADGE_COLORS.get(str(value), "blue")


def badge_label(value: str) -> str:
    """``value`` as words, for tables and selectboxes (``no_field_match`` → ``no field
    match``); tables colour these cells with ``label_style``."""
    return str(value).replace("_", " ")


def label_style(label: object) -> str:
    """The CSS of a table cell holding a ``badge_label`` (its badge colour, bold)."""
    hex_color = BADGE_HEX[badge_color(str(label).replace(" ", "_"))]
    return f"color: {hex_color}; font-weight: 600"


# -- customers --------------------------------------------------------------------------------


def link_tooltip(links: Sequence[LinkView]) -> str | None:
    """The tooltip of the link icon: the linked systems, or with one system its external id.

    Links to inactive integrations are marked dormant. None when there is no link.
    """
    if not links:
        return None

    def state(link: LinkView) -> str:
        return "" if link.integration_active else ", inactive"

    if len(links) == 1:
        link = links[0]
        return (f"Linked to {link.integration_name}: external id "
                f"{link.external_customer_id} ({link.method}{state(link)})")
    return "Linked to " + "; ".join(
        f"{link.integration_name} ({link.external_customer_id}{state(link)})" for link in links)


def systems_tooltip(systems: Sequence[str]) -> str | None:
    """The tooltip of a search result's link icon: the systems it is linked to, or None."""
    if not systems:
        return None
    return "Linked to " + ", ".join(systems)


def suppression_note(suppression: SuppressionView) -> str:
    """One sentence saying auto-linking to an integration is off for this profile, and why."""
    return (f"Auto-linking to {suppression.integration_name} is off for this profile: it was "
            f"unlinked by {suppression.created_by} on {when(suppression.created_at)}.")


# -- pulled data ------------------------------------------------------------------------------

TRANSACTION_LABELS = {"ORDER": "Orders", "FLIGHT": "Reservations", "STAY": "Stays",
                      "SUBSCRIPTION": "Subscriptions", "GENERIC": "Transactions"}


def value_text(value: Any) -> str:
    """A pulled value as one line: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _day(value: Any) -> str:
    return str(value or "")[:10]


def _join(*parts: Any) -> str:
    return " · ".join(text(p) for p in parts if p not in (None, ""))


def transaction_title(t: Mapping[str, Any]) -> tuple[str, set[str]]:
    """The Markdown headline of a transaction card (its values escaped) and the keys it
    used."""
    kind = str(t.get("type", "GENERIC")).upper()
    if kind == "ORDER":
        used = {"orderNumber", "orderStatus", "orderTotal", "createdAt"}
        return _join_bold(f"Order {t.get('orderNumber', '?')}", t.get("orderStatus"),
                          t.get("orderTotal"), _day(t.get("createdAt"))), used
    if kind == "FLIGHT":
        used = {"flightNumber", "origin", "destination", "departureAt", "status"}
        route = f"{t.get('origin', '?')} → {t.get('destination', '?')}"
        return (bold(t.get("flightNumber", "Flight")) + " " + text(route) + " · "
                + _join(f"departs {str(t.get('departureAt', '')).replace('T', ' ')[:16]}",
                        t.get("status"))), used
    if kind == "STAY":
        name_key = next((k for k in ("propertyName", "hotel", "name", "property") if k in t),
                        "")
        used = {name_key, "checkIn", "checkOut", "status"}
        return _join_bold(t.get(name_key, "Stay"),
                          f"{_day(t.get('checkIn'))} → {_day(t.get('checkOut'))}",
                          t.get("status")), used
    if kind == "SUBSCRIPTION":
        name_key = next((k for k in ("plan", "name", "product") if k in t), "")
        used = {name_key, "status", "price"}
        return _join_bold(t.get(name_key, "Subscription"), t.get("status"), t.get("price")), used
    first = next(((k, v) for k, v in t.items() if k != "type" and isinstance(v, str)), None)
    if first is None:
        return "**Transaction**", set()
    return bold(first[1]), {first[0]}


def _join_bold(headline: Any, *rest: Any) -> str:
    tail = _join(*rest)
    return bold(headline) + (f" · {tail}" if tail else "")


def transaction_details(t: Mapping[str, Any], used: set[str]) -> str:
    """The flat values of a transaction its headline did not use, escaped, on one line."""
    return " · ".join(f"{text(k)}: {text(v)}" for k, v in t.items()
                      if k not in used and k != "type" and not isinstance(v, list | dict))


def group_transactions(transactions: Sequence[Mapping[str, Any]]
                       ) -> dict[str, list[tuple[int, Mapping[str, Any]]]]:
    """Transactions grouped by upper-cased type, in first-seen order, each with its index."""
    groups: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, t in enumerate(transactions):
        groups.setdefault(str(t.get("type", "GENERIC")).upper(), []).append((index, t))
    return groups


def transaction_group_label(kind: str, count: int) -> str:
    """``3 Orders``, ``1 Reservations``: the label of a group of transaction cards."""
    return f"{count} {TRANSACTION_LABELS.get(kind, kind.title())}"


# -- exchanges --------------------------------------------------------------------------------


def pretty_body(body: str | None) -> tuple[str, str]:
    """A body for display and its code language: indented JSON when it parses, else the text
    as it came."""
    if body is None or body == "":
        return "(empty)", "text"
    try:
        return safejson.dumps_readable(safejson.loads(body)), "json"
    except (ValueError, TypeError, RecursionError):
        return body, "text"


def header_rows(headers: Mapping[str, str]) -> list[dict[str, str]]:
    """Headers as ``header`` / ``value`` rows (secrets arrive already masked)."""
    return [{"header": k, "value": v} for k, v in headers.items()]


# -- charts -----------------------------------------------------------------------------------


def chart_text(value: object) -> str:
    """``value`` for a plotly label or legend: ``<``, ``>`` and ``&`` as entities, so plotly's
    own HTML subset (``<a href>``, ``<b>``, ``<br>``) is shown, never applied."""
    return html.escape(_LINE_BREAKS.sub(" ", str(value)), quote=False)


# -- health -----------------------------------------------------------------------------------


def last_error_line(kind: str, at: datetime, exchange_id: int, message: str,
                    limit: int = 160) -> str:
    """``Last error: timeout at … (exchange 12): message`` with the message cut at ``limit``."""
    short = message if len(message) <= limit else message[: limit - 1] + "…"
    return f"Last error: {kind} at {when(at)} (exchange {exchange_id}): {short}"


# -- audit ------------------------------------------------------------------------------------


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           sort_keys=True)


def audit_change(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    """Before → after in one line: changed keys as ``key: old → new``, added keys as
    ``key: new``, removed ones as ``key: old → (none)``; ``(no details)`` when both are empty."""
    before, after = dict(before or {}), dict(after or {})
    parts = []
    for key in [*before, *(k for k in after if k not in before)]:
        if key in before and key in after:
            if before[key] != after[key]:
                parts.append(f"{key}: {_compact(before[key])} → {_compact(after[key])}")
        elif key in after:
            parts.append(f"{key}: {_compact(after[key])}")
        else:
            parts.append(f"{key}: {_compact(before[key])} → (none)")
    return "; ".join(parts) or "(no details)"


# -- scheduled probes -------------------------------------------------------------------------


def probe_line(status: ProbeStatus) -> str:
    """``Every 15 min · last probe … (failed) · p95 812 ms, SLO 500 ms · next due …`` and, once
    a probe ran, why it is or is not degraded."""
    if not status.enabled:
        return "No scheduled probe: an admin turns one on in the integration's settings."
    slo = f", SLO {millis(status.p95_slo_ms)}" if status.p95_slo_ms else ", no SLO"
    parts = [f"Every {status.every_minutes} min"]
    card = status.card
    if card is None:
        parts.append("no probe has run yet")
    else:
        parts.append(f"last probe {when(card.started_at)} "
                     f"({'passed' if card.passed else 'failed'})")
        parts.append(f"p95 {millis(card.p95_ms)}{slo}")
    if status.next_due_at is not None:
        parts.append(f"next due {when(status.next_due_at)}")
    elif not status.active:
        parts.append("not probed while inactive")
    line = " · ".join(parts)
    if status.verdict is not None:
        label = "Degraded" if status.verdict.degraded else "OK"
        line += f". {label}: {status.verdict.reason}."
    return line
