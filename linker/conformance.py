"""Conformance checks: a battery of real lookups that tells whether an adaptor keeps the contract.

Pure I/O through the lookup client, no database (the CLI runs it for adaptor CI; the service
stores the exchanges and the report card):

    report = run_checks(LookupClient(), target, ConformanceOptions(known_email="a@b.com"))
    report.passed                     # no required check failed
    [(c.name, c.status) for c in report.checks]

A check that cannot be judged because an earlier one failed is ``skip`` ("not run: ..."), so
one broken behaviour fails one check and the report card points at the cause.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from linker.contract import CustomerProfile, RequestKind, detailed_request, search_request
from linker.core.identity import normalize_phone
from linker.lookup.client import LookupClient
from linker.lookup.exchange import ErrorKind, Exchange, Trigger
from linker.lookup.target import AdaptorTarget

DEFAULT_LATENCY_BUDGET_MS = 5000.0
DEFAULT_LATENCY_CALLS = 3
UNKNOWN_QUERY_KEY = "linkerConformanceProbe"
_REFUSED = (401, 403)
_NO_ANSWER = frozenset({ErrorKind.TIMEOUT, ErrorKind.UNREACHABLE, ErrorKind.TLS})


class CheckStatus(StrEnum):
    """The verdict of one check."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


CHECK_TITLES: dict[str, str] = {
    "reachable": "Reachable",
    "auth_accepted": "Credentials accepted",
    "unsigned_refused": "Unsigned request refused",
    "bad_signature_refused": "Badly signed request refused",
    "json_content_type": "JSON content type",
    "basic_known_email": "BASIC by a known email finds it",
    "basic_known_phone": "BASIC by a known phone finds it",
    "basic_unknown_email": "BASIC by an unknown email is empty",
    "detailed_by_id": "DETAILED by the returned id gives exactly one result",
    "unknown_query_key": "Unknown query key tolerated",
    "latency_p95": "Latency p95 under budget",
}
"""Every check, in the order it runs, with its title."""


@dataclass(frozen=True)
class ConformanceOptions:
    """What the checks need to know: a person the adaptor holds, and the latency budget."""

    known_email: str
    known_phone: str | None = None
    latency_calls: int = DEFAULT_LATENCY_CALLS
    """Extra BASIC searches sent only to measure latency (besides the checks' own calls)."""
    latency_budget_ms: float = DEFAULT_LATENCY_BUDGET_MS
    unknown_email: str = field(
        default_factory=lambda: f"nobody-{secrets.token_hex(6)}@conformance.invalid")


@dataclass(frozen=True)
class CheckResult:
    """One line of the report card: the verdict, why, and the exchange behind it."""

    name: str
    status: CheckStatus
    message: str
    required: bool = True
    exchange: Exchange | None = None

    @property
    def title(self) -> str:
        """The check's human title."""
        return CHECK_TITLES.get(self.name, self.name)

    @property
    def failed(self) -> bool:
        """True when this is a required check that failed."""
        return self.required and self.status is CheckStatus.FAIL


@dataclass(frozen=True)
class ConformanceReport:
    """Every check of one run and every exchange sent, in order."""

    url: str
    started_at: datetime
    elapsed_ms: float
    checks: tuple[CheckResult, ...]
    exchanges: tuple[Exchange, ...]

    @property
    def passed(self) -> bool:
        """True when no required check failed (warnings and skips do not fail a run)."""
        return not any(check.failed for check in self.checks)

    @property
    def p95_ms(self) -> float:
        """The p95 latency over every call of the run (what ``latency_p95`` judges)."""
        return p95([e.elapsed_ms for e in self.exchanges])

    def check(self, name: str) -> CheckResult:
        """The result of the check ``name`` (KeyError when it is not one)."""
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output: the card, with each check's exchange inline."""
        return {
            "url": self.url, "started_at": self.started_at.isoformat(),
            "elapsed_ms": round(self.elapsed_ms, 1), "passed": self.passed,
            "checks": [{"name": c.name, "title": c.title, "status": c.status.value,
                        "required": c.required, "message": c.message,
                        "exchange": c.exchange.as_dict() if c.exchange else None}
                       for c in self.checks],
        }


def p95(samples: Sequence[float]) -> float:
    """The 95th percentile by nearest rank (the largest value for fewer than 20 samples)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


def _why(exchange: Exchange) -> str:
    if exchange.error is not None:
        return f"{exchange.error.kind.value}: {exchange.error.message}"
    return "no error"


def _warnings(exchange: Exchange) -> str:
    """The contract warnings of a valid answer (the content type has its own check)."""
    found = [v for v in exchange.violations if v.path != "$"]
    if not found:
        return ""
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"; but {found[0].path}: {found[0].message}{more}"


def _valid(exchange: Exchange) -> CheckStatus:
    """PASS for a clean answer, WARN when it holds contract warnings."""
    return CheckStatus.WARN if _warnings(exchange) else CheckStatus.PASS


def _has_email(profile: CustomerProfile, email: str) -> bool:
    wanted = email.strip().lower()
    return any(e.original.strip().lower() == wanted for e in profile.emails)


def _has_phone(profile: CustomerProfile, phone: str) -> bool:
    try:
        wanted = normalize_phone(phone)
    except ValueError:
        wanted = phone.strip()
    for entry in profile.phones:
        try:
            if normalize_phone(entry.original) == wanted:
                return True
        except ValueError:
            continue
    return False


class _Run:
    """One run: sends lookups, keeps every exchange, and judges them."""

    def __init__(self, client: LookupClient, target: AdaptorTarget,
                 options: ConformanceOptions) -> None:
        self.client = client
        self.target = target
        self.options = options
        self.exchanges: list[Exchange] = []
        self.checks: list[CheckResult] = []

    def send(self, fields: dict[str, str] | None = None, *, target: AdaptorTarget | None = None,
             external_id: str | None = None) -> Exchange:
        if external_id is not None:
            request, kind = detailed_request(None, external_id), RequestKind.DETAILED
        else:
            request, kind = search_request(None, fields or {}), RequestKind.SEARCH
        exchange = self.client.lookup_sync(target or self.target, request, kind=kind,
                                           trigger=Trigger.CONFORMANCE)
        self.exchanges.append(exchange)
        return exchange

    def add(self, name: str, status: CheckStatus, message: str,
            exchange: Exchange | None = None, *, required: bool = True) -> CheckResult:
        result = CheckResult(name, status, message, required, exchange)
        self.checks.append(result)
        return result

    def skip_rest(self, reason: str) -> None:
        done = {c.name for c in self.checks}
        for name in CHECK_TITLES:
            if name not in done:
                self.add(name, CheckStatus.SKIP, f"not run: {reason}")

    def run(self) -> None:
        email = self.options.known_email.strip()
        first = self.send({"email": email})
        if not self._reachable(first) or not self._auth(first):
            return
        self._signature()
        self._content_type(first)
        found = self._known_email(first, email)
        self._known_phone(first)
        if not first.ok:
            for name in ("basic_unknown_email", "detailed_by_id", "unknown_query_key"):
                self.add(name, CheckStatus.SKIP,
                         "not run: the adaptor gave no valid answer to a BASIC search")
        else:
            self._unknown_email()
            self._detailed(found)
            self._unknown_key(email)
        self._latency(email)

    def _reachable(self, first: Exchange) -> bool:
        if first.response is None or (first.error is not None
                                      and first.error.kind in _NO_ANSWER):
            self.add("reachable", CheckStatus.FAIL, f"no answer from {self.target.url}: "
                     f"{_why(first)}", first)
            self.skip_rest("the adaptor is not reachable")
            return False
        status = first.response.status if first.response else 0
        self.add("reachable", CheckStatus.PASS, f"answered HTTP {status} in "
                 f"{first.elapsed_ms:.0f} ms", first)
        return True

    def _auth(self, first: Exchange) -> bool:
        status = first.response.status if first.response else 0
        if status in _REFUSED:
            self.add("auth_accepted", CheckStatus.FAIL, f"the adaptor refused Linker's request "
                     f"with HTTP {status}; check the username, password and signing key on "
                     "both sides (and the clocks, for signatures)", first)
            self.skip_rest("the adaptor refused the credentials")
            return False
        self.add("auth_accepted", CheckStatus.PASS, f"HTTP {status}, not a refusal", first)
        return True

    def _refusal_check(self, name: str, what: str, target: AdaptorTarget) -> None:
        exchange = self.send({"email": self.options.known_email.strip()}, target=target)
        status = exchange.response.status if exchange.response else None
        if status in _REFUSED:
            self.add(name, CheckStatus.PASS, f"refused with HTTP {status}", exchange)
        elif status is not None and 200 <= status < 300:
            self.add(name, CheckStatus.FAIL, f"the adaptor accepted {what} (HTTP {status}): "
                     "it must verify Gladly-Authorization and answer 401", exchange)
        else:
            shown = f"HTTP {status}" if status is not None else _why(exchange)
            self.add(name, CheckStatus.WARN, f"{what} got {shown}, not a 401 refusal", exchange)

    def _signature(self) -> None:
        if not self.target.signing_key:
            for name in ("unsigned_refused", "bad_signature_refused"):
                self.add(name, CheckStatus.SKIP, "no signing key is set, so requests are not "
                         "signed; set one to check that the adaptor verifies signatures")
            return
        real_key = (self.target.signing_key, *self.target.also_mask)  # masked if echoed
        self._refusal_check("unsigned_refused", "an unsigned request",
                            replace(self.target, signing_key="", also_mask=real_key))
        self._refusal_check("bad_signature_refused", "a request signed with a wrong key",
                            replace(self.target, signing_key=f"wrong-{secrets.token_hex(8)}",
                                    also_mask=real_key))

    def _content_type(self, first: Exchange) -> None:
        response = first.response
        if response is None or not 200 <= response.status < 300:
            self.add("json_content_type", CheckStatus.SKIP,
                     "not run: the BASIC search got no successful answer", first)
            return
        content_type = next((v for k, v in response.headers.items()
                             if k.lower() == "content-type"), "")
        media = content_type.split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            self.add("json_content_type", CheckStatus.PASS, f"Content-Type {content_type}", first)
        else:
            self.add("json_content_type", CheckStatus.FAIL,
                     f"Content-Type is {content_type or 'missing'!s}; answer application/json",
                     first)

    def _known_email(self, first: Exchange, email: str) -> CustomerProfile | None:
        if not first.ok:
            self.add("basic_known_email", CheckStatus.FAIL, f"no valid answer: {_why(first)}",
                     first)
            return None
        found = next((r for r in first.results if _has_email(r, email)), None)
        if found is None:
            self.add("basic_known_email", CheckStatus.FAIL,
                     f"none of the {len(first.results)} result(s) carries {email}; is that "
                     "email in the adaptor's data?", first)
            return None
        self.add("basic_known_email", _valid(first), f"{len(first.results)} result(s); "
                 f"{found.external_customer_id} carries it{_warnings(first)}", first)
        return found

    def _known_phone(self, first: Exchange) -> None:
        phone = (self.options.known_phone or "").strip()
        if not phone:
            self.add("basic_known_phone", CheckStatus.SKIP, "no known phone given", None)
            return
        if not first.ok:
            self.add("basic_known_phone", CheckStatus.SKIP,
                     "not run: the adaptor gave no valid answer to a BASIC search")
            return
        exchange = self.send({"phone": phone})
        if not exchange.ok:
            self.add("basic_known_phone", CheckStatus.FAIL, f"no valid answer: {_why(exchange)}",
                     exchange)
        elif any(_has_phone(r, phone) for r in exchange.results):
            self.add("basic_known_phone", CheckStatus.PASS,
                     f"{len(exchange.results)} result(s), one carries {phone}", exchange)
        else:
            self.add("basic_known_phone", CheckStatus.FAIL, f"none of the "
                     f"{len(exchange.results)} result(s) carries {phone}", exchange)

    def _unknown_email(self) -> None:
        exchange = self.send({"email": self.options.unknown_email})
        if not exchange.ok:
            self.add("basic_unknown_email", CheckStatus.FAIL,
                     f"no valid answer: {_why(exchange)}; nobody found must be "
                     '{"results": []} with HTTP 200', exchange)
        elif exchange.results:
            self.add("basic_unknown_email", CheckStatus.FAIL,
                     f"{len(exchange.results)} result(s) for an email nobody has "
                     f"({self.options.unknown_email}); answer an empty results list", exchange)
        else:
            self.add("basic_unknown_email", CheckStatus.PASS, "empty results", exchange)

    def _detailed(self, found: CustomerProfile | None) -> None:
        if found is None:
            self.add("detailed_by_id", CheckStatus.SKIP,
                     "not run: the BASIC search returned no record carrying the known email")
            return
        external_id = found.external_customer_id
        exchange = self.send(external_id=external_id)
        ids = [r.external_customer_id for r in exchange.results]
        if exchange.ok and ids == [external_id]:
            self.add("detailed_by_id", _valid(exchange),
                     f"exactly one result, {external_id}{_warnings(exchange)}", exchange)
        elif exchange.ok:
            self.add("detailed_by_id", CheckStatus.FAIL,
                     f"the result is {ids[0]}, not the id asked for ({external_id})", exchange)
        else:
            self.add("detailed_by_id", CheckStatus.FAIL,
                     f"DETAILED of {external_id}: {_why(exchange)}", exchange)

    def _unknown_key(self, email: str) -> None:
        exchange = self.send({"email": email, UNKNOWN_QUERY_KEY: "ignore-me"})
        if not exchange.ok:
            self.add("unknown_query_key", CheckStatus.FAIL,
                     f"a query with the extra key {UNKNOWN_QUERY_KEY!r} failed: "
                     f"{_why(exchange)}; Gladly may send keys an adaptor does not know, "
                     "ignore them", exchange)
        elif any(_has_email(r, email) for r in exchange.results):
            self.add("unknown_query_key", CheckStatus.PASS, "the extra key was ignored", exchange)
        else:
            self.add("unknown_query_key", CheckStatus.WARN,
                     "answered, but no longer with the known record: does the adaptor filter "
                     "on keys it does not know?", exchange)

    def _latency(self, email: str) -> None:
        for _ in range(max(0, self.options.latency_calls)):
            self.send({"email": email})
        samples = [e.elapsed_ms for e in self.exchanges]
        value = p95(samples)
        slowest = max(self.exchanges, key=lambda e: e.elapsed_ms)
        budget = self.options.latency_budget_ms
        verdict = CheckStatus.PASS if value < budget else CheckStatus.FAIL
        self.add("latency_p95", verdict, f"p95 {value:.0f} ms over {len(samples)} calls "
                 f"(budget {budget:.0f} ms; slowest {slowest.elapsed_ms:.0f} ms)", slowest)


def run_checks(client: LookupClient, target: AdaptorTarget,
               options: ConformanceOptions) -> ConformanceReport:
    """Run every check against ``target`` and return the report card; never raises for
    adaptor problems (they are failed checks)."""
    run = _Run(client, target, options)
    started = datetime.now().astimezone()
    run.run()
    order = list(CHECK_TITLES)
    checks = tuple(sorted(run.checks, key=lambda c: order.index(c.name)))
    first = run.exchanges[0].started_at if run.exchanges else started
    elapsed = sum(e.elapsed_ms for e in run.exchanges)
    return ConformanceReport(target.url, first, elapsed, checks, tuple(run.exchanges))
