"""A month of backdated demo history, written with SQLAlchemy Core bulk inserts.

``seed_history`` adds about 2,000 profiles to a demo database that ``linker.demo.seed_demo``
has set up (integrations, accounts, the service-created customers), as if they had arrived over
the last ``days`` days: for each, the auto-link attempts the demo's rules would have made (with
their exchanges, outcomes, links, pulled data and audit events), agents linking some ambiguous
profiles by hand after a search (the flaky Shop failing now and then), and a few unlinks.

The profiles overlap the reference datasets the way real data does, because they are drawn from
the population behind them: matched by email, by phone only (a record that carries the work
email), in several systems, ambiguous (an email two Shop accounts share), conflicting (two
profiles of one person, each matching the same record), in no system, some with non-ASCII names.

Each exchange is what a real lookup would have recorded: the contract's body (``linker.contract``
builders) and the headers the lookup client sends (``LookupClient.prepare``: Accept,
Content-Type, Gladly-Time, the correlation and trace ids, Basic credentials, Gladly-Authorization
over every signed header) with the demo's credentials, masked by the integration's Redactor as a
real exchange is stored (see ``_Wire``); every exchange starts at its own moment (to the
microsecond), with Gladly-Time matching.

Everything derives from ``seed``: the same seed writes the same rows (ids included). Seeding is
done once per database (an audit event marks it); reset the demo to write it again.
"""

from __future__ import annotations

import base64
import json
import random
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.engine import Connection

from linker import signing
from linker.adaptor import Dataset, Person, Record, load_dataset, people
from linker.contract import LookupRequest
from linker.contract.requests import autolink_request, detailed_request, search_request
from linker.demo import DEMO_INTEGRATIONS
from linker.lookup import AdaptorTarget, LookupClient, correlation_id, trace_id
from linker.redaction import MASK, Redactor
from linker.store.database import Database
from linker.store.models import (
    AuditEvent,
    AutolinkOutcome,
    Customer,
    CustomerEmail,
    CustomerPhone,
    ExchangeRecord,
    Integration,
    Link,
    PulledData,
    Suppression,
)

HISTORY_PROFILES = 1950
"""Profiles ``seed_history`` adds (with the ~50 the services create: about 2,000)."""
HISTORY_DAYS = 30
HISTORY_SEED = 7
MARKER_ACTION = "demo.history_seeded"
BATCH = 2_000
OUTSIDER_SHARE = 0.10
"""Profiles of people no dataset knows (a mail.example address, no phone)."""
CONFLICT_SHARE = 0.03
"""People who get two profiles (email only, phone only) that match the same record."""
AUTOLINK_ERROR_RATE = 0.02
FLAKY_ERROR_RATE = 0.2
MANUAL_LINK_SHARE = 0.6
"""Ambiguous profiles an agent later links by hand (after a search)."""
UNLINK_SHARE = 0.03
AGENT_SEARCHES = 400
"""Extra "all unlinked systems" searches by agents spread over the month."""
CORRELATION_HEADER = "Gladly-Correlation-Id"
TRACE_HEADER = "X-B3-Traceid"
LENGTH_HEADER = "Content-Length"
_HISTORY_SECRET = "demo-history-secret"
"""The password or signing key of an integration the demo does not define (masked anyway)."""
_FLAKY_ERRORS = (("http_status", 500), ("http_status", 503), ("http_status", 500),
                 ("http_status", 503), ("timeout", None), ("invalid_json", 200))


@dataclass(frozen=True)
class SystemSpec:
    """One integration as the history needs it: its row, dataset and auto-link fields."""

    id: int
    name: str
    url: str
    dataset: Dataset
    autolink_fields: tuple[str, ...]
    flaky: bool
    target: AdaptorTarget
    """How the lookup client would call it (the demo's credentials), to build its requests."""
    redactor: Redactor


@dataclass
class HistoryReport:
    """What ``seed_history`` wrote (all zero and ``skipped`` when it had been done before)."""

    skipped: bool = False
    rows: Counter[str] = field(default_factory=Counter)
    """Table name → rows inserted."""
    outcomes: Counter[str] = field(default_factory=Counter)
    non_ascii_names: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> str:
        """One line for the console."""
        if self.skipped:
            return "history already seeded (reset the demo to seed it again)"
        tables = ", ".join(f"{n:,} {t}" for t, n in sorted(self.rows.items()))
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items()))
        return (f"{tables}; auto-link outcomes: {outcomes}; {self.non_ascii_names} non-ASCII "
                f"names; {self.elapsed_s:.1f} s")


@dataclass
class _Profile:
    id: str
    name: str
    email: str | None
    mobile: str | None
    created_at: datetime
    person: Person | None


class _Wire:
    """Request headers and bodies as the lookup client builds them and a real exchange stores
    them (signature and credentials masked).

    Per integration, ``LookupClient.prepare`` builds and signs one request, masked by the
    integration's Redactor: every header, in the order sent, with the signed-header list and
    the masked credentials. Each exchange then gets its own Gladly-Time, ids and body length,
    from the client's own functions; the signature is stored masked, so it is not recomputed
    (tests/integration/test_demo_history_exchanges.py checks every seeded request against a
    full ``prepare``)."""

    def __init__(self) -> None:
        self._templates: dict[int, dict[str, str]] = {}

    def request(self, system: SystemSpec, request: LookupRequest, at: datetime,
                raw_id: bytes) -> tuple[dict[str, str], str]:
        """The headers and body of ``request`` sent to ``system`` at ``at`` with ``raw_id``."""
        body = request.body()
        headers = dict(self._templates.get(system.id) or self._template(system, request))
        headers[signing.TIME_HEADER] = signing.format_time(at)
        headers[CORRELATION_HEADER] = correlation_id(raw_id)
        headers[TRACE_HEADER] = trace_id(raw_id)
        headers[LENGTH_HEADER] = str(len(body))
        return headers, system.redactor.text(body.decode("utf-8"))

    def _template(self, system: SystemSpec, request: LookupRequest) -> dict[str, str]:
        prepared = LookupClient().prepare(system.target, request)
        headers = system.redactor.headers(prepared.header_pairs())
        missing = {signing.TIME_HEADER, CORRELATION_HEADER, TRACE_HEADER, LENGTH_HEADER} - set(
            headers)
        if missing:  # the client changed what it sends: the history must follow
            raise RuntimeError(f"the lookup client no longer sends {sorted(missing)}")
        self._templates[system.id] = headers
        return headers


@dataclass
class _Rows:
    """Rows to insert, per table, the next exchange id, and the exchanges' start times.

    ``times`` draws what only shapes when exchanges start (its own generator, so the rest of
    the history is what the seed alone decides)."""

    next_exchange_id: int
    times: random.Random
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    wire: _Wire = field(default_factory=_Wire)
    started: set[datetime] = field(default_factory=set)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.tables.setdefault(table, []).append(row)

    def start(self, at: datetime) -> datetime:
        """A start time just before ``at`` (under a millisecond) that no other exchange has."""
        moment = at - timedelta(microseconds=1 + int(self.times.random() * 999))
        while moment in self.started:
            moment -= timedelta(microseconds=1)
        self.started.add(moment)
        return moment

    def before(self, now: datetime, earliest: datetime, at: datetime) -> datetime:
        """``at``, or a moment between ``earliest`` and ``now`` when it is past ``now``."""
        if at <= now:
            return at
        return earliest + (now - earliest) * self.times.random()


def history_seeded(db: Database) -> bool:
    """Whether ``seed_history`` has already run on this database."""
    with db.engine.connect() as connection:
        return bool(connection.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == MARKER_ACTION)))


def seed_history(db: Database, *, seed: int = HISTORY_SEED, profiles: int = HISTORY_PROFILES,
                 days: int = HISTORY_DAYS, dataset_size: int = 1000,
                 flaky_names: Sequence[str] = ("Shop (flaky)",),
                 datasets: Mapping[str, str] | None = None,
                 now: datetime | None = None) -> HistoryReport:
    """Write the demo's month of history (see the module docstring); once per database.

    ``datasets`` maps integration names to dataset names (default: Shop, Loyalty, Travel and
    the flaky Shop); integrations missing from the database are left out. ``now`` (default:
    the wall clock) is the end of the month.
    """
    started = time.perf_counter()
    report = HistoryReport()
    if history_seeded(db):
        report.skipped = True
        return report
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    names = dict(datasets or {"Shop": "shop", "Loyalty": "loyalty", "Travel": "travel",
                              "Shop (flaky)": "shop"})
    rng = random.Random(f"linker-demo-history:{seed}")
    with db.engine.connect() as connection:
        systems = _systems(connection, names, dataset_size, frozenset(flaky_names))
        taken_emails = set(connection.scalars(select(CustomerEmail.normalized)))
        taken_mobiles = {m for m in connection.scalars(select(CustomerPhone.mobile_key))
                         if m is not None}
        linked = {(i, e) for i, e in connection.execute(
            select(Link.integration_id, Link.external_customer_id))}
        first_id = int(connection.scalar(select(func.max(ExchangeRecord.id))) or 0) + 1
    population = people(systems[0].dataset) if systems else []
    planned = _plan_profiles(rng, population, profiles, taken_emails, taken_mobiles, moment,
                             days)
    rows = _Rows(first_id, random.Random(f"linker-demo-history-times:{seed}"))
    indexes = {s.id: _index(s.dataset) for s in systems}
    for profile in planned:
        _profile_rows(rows, profile, report)
        for system in systems:
            if system.autolink_fields:
                _autolink(rng, rows, profile, system, indexes[system.id], linked, report)
    _agent_work(rng, rows, planned, systems, indexes, linked, moment)
    rows.add("audit_events", _audit(moment, "system", "admin", MARKER_ACTION, "demo",
                                    str(seed), None, {"seed": seed, "profiles": len(planned),
                                                      "days": days}))
    _insert_all(db, rows, report)
    report.elapsed_s = time.perf_counter() - started
    return report


# ---------------------------------------------------------------------------------- planning


def _systems(connection: Connection, names: Mapping[str, str], size: int | None,
             flaky: frozenset[str]) -> list[SystemSpec]:
    found = connection.execute(select(Integration.id, Integration.name, Integration.url,
                                      Integration.username, Integration.realm,
                                      Integration.headers, Integration.autolink_enabled,
                                      Integration.autolink_fields)).all()
    by_name = {row.name: row for row in found}
    systems = []
    for name, dataset in names.items():
        row = by_name.get(name)
        if row is None:
            continue
        fields = tuple(row.autolink_fields) if row.autolink_enabled else ()
        target = _target(row.name, row.url, row.username, row.realm, row.headers)
        systems.append(SystemSpec(row.id, name, row.url, load_dataset(dataset, size), fields,
                                  name in flaky, target, target.redactor()))
    return systems


def _target(name: str, url: str, username: str, realm: str,
            headers: Sequence[Mapping[str, Any]]) -> AdaptorTarget:
    """The integration as the lookup client calls it, with the demo's credentials (secrets it
    does not know are placeholders: what is stored masks them)."""
    demo = next((i for i in DEMO_INTEGRATIONS if i.name == name), None)
    secret = {str(h["name"]) for h in headers if h.get("secret")}
    return AdaptorTarget(
        url=url, name=name, username=username, realm=realm,
        password=demo.password if demo else _HISTORY_SECRET if username else "",
        signing_key=demo.signing_key if demo else _HISTORY_SECRET,
        headers={str(h["name"]): MASK if h["name"] in secret else str(h.get("value", ""))
                 for h in headers}, secret_headers=frozenset(secret))


def _customer_id(rng: random.Random) -> str:
    return base64.urlsafe_b64encode(rng.getrandbits(128).to_bytes(16, "big")).rstrip(
        b"=").decode("ascii")


def _plan_profiles(rng: random.Random, population: Sequence[Person], count: int,
                   taken_emails: set[str], taken_mobiles: set[str], now: datetime,
                   days: int) -> list[_Profile]:
    """The profiles, oldest first, none holding an email or mobile another profile holds."""
    free = [p for p in population if p.email.lower() not in taken_emails
            and p.mobile not in taken_mobiles]
    rng.shuffle(free)
    outsiders = int(count * OUTSIDER_SHARE)
    planned: list[_Profile] = []
    span = days * 86_400

    def at() -> datetime:
        return now - timedelta(seconds=rng.randrange(span))

    for person in free:
        if len(planned) >= count - outsiders:
            break
        roll = rng.random()
        if roll < CONFLICT_SHARE and len(planned) + 2 <= count - outsiders:
            old = f"{person.email.split('@')[0]}.old@mail.example"
            planned.append(_Profile(_customer_id(rng), person.name, person.email, None, at(),
                                    person))
            planned.append(_Profile(_customer_id(rng), person.name, old,
                                    person.mobile, at(), person))
            continue
        email = None if roll > 0.96 else person.email
        mobile = None if 0.90 < roll <= 0.96 else person.mobile
        planned.append(_Profile(_customer_id(rng), person.name, email, mobile, at(), person))
    for i in range(count - len(planned)):
        name = population[rng.randrange(len(population))].name if population else f"Guest {i}"
        local = _ascii_email(f"{name.replace(' ', '.')}.{i}").lower()
        planned.append(_Profile(_customer_id(rng), name, f"{local}@mail.example", None, at(),
                                None))
    planned.sort(key=lambda p: (p.created_at, p.id))
    return planned


def _ascii_email(text: str) -> str:

    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded if ch.isalnum() or ch in ".@-").replace("..", ".")


@dataclass(frozen=True)
class _Index:
    by_email: dict[str, list[Record]]
    by_mobile: dict[str, list[Record]]


def _index(dataset: Dataset) -> _Index:
    by_email: dict[str, list[Record]] = {}
    by_mobile: dict[str, list[Record]] = {}
    for record in dataset.records:
        for email in record.emails:
            by_email.setdefault(email.lower(), []).append(record)
        for phone in record.phones:
            if phone.type == "MOBILE" and phone.e164:
                by_mobile.setdefault(phone.e164, []).append(record)
    return _Index(by_email, by_mobile)


# ---------------------------------------------------------------------------------- rows


def _profile_rows(rows: _Rows, profile: _Profile, report: HistoryReport) -> None:
    at = profile.created_at
    address = profile.person.address if profile.person and profile.email else ""
    rows.add("customers", {"id": profile.id, "name": profile.name, "address": address,
                           "custom_attributes": {}, "created_at": at, "updated_at": at})
    if profile.email:
        rows.add("customer_emails", {"customer_id": profile.id, "original": profile.email,
                                     "normalized": profile.email.lower(), "position": 0,
                                     "source": ""})
    if profile.mobile:
        rows.add("customer_phones", {"customer_id": profile.id, "original": profile.mobile,
                                     "e164": profile.mobile, "type": "MOBILE",
                                     "mobile_key": profile.mobile, "position": 0, "source": ""})
    if not profile.name.isascii():
        report.non_ascii_names += 1
    contact = {"name": profile.name, "emails": [profile.email] if profile.email else [],
               "phones": [{"number": profile.mobile, "type": "MOBILE"}] if profile.mobile
               else []}
    rows.add("audit_events", _audit(at, "system", "admin", "customer.created", "customer",
                                    profile.id, None, contact))


def _audit(at: datetime, actor: str, role: str, action: str, entity_type: str, entity_id: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    return {"at": at, "actor": actor, "role": role, "action": action,
            "entity_type": entity_type, "entity_id": entity_id, "before": before,
            "after": after}


def _body(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _exchange(rng: random.Random, rows: _Rows, system: SystemSpec, profile: _Profile,
              at: datetime, *, kind: str, trigger: str, actor: str, request: LookupRequest,
              results: Sequence[dict[str, Any]], error: tuple[str, int | None] | None) -> int:
    """Add one exchange row, started just before ``at``; returns its id."""
    exchange_id = rows.next_exchange_id
    rows.next_exchange_id += 1
    raw_id = rng.getrandbits(128).to_bytes(16, "big")
    elapsed_ms = (round(rng.lognormvariate(4.2 if system.flaky else 3.0, 0.5), 1)
                  if error is None or error[0] != "timeout" else 5000.0)
    started = rows.start(at)
    headers, body = rows.wire.request(system, request, started, raw_id)
    status: int | None = 200
    answer: str | None = _body({"results": list(results)})
    message = None
    if error is not None:
        kind_name, status = error
        message = {"timeout": f"{system.name} did not answer within 5 s",
                   "invalid_json": f"{system.name} answered with a truncated JSON body",
                   }.get(kind_name, f"{system.name} answered HTTP {status}")
        answer = (None if status is None else answer[: len(answer) // 2] if
                  kind_name == "invalid_json" and answer else
                  _body({"errors": [{"code": "server_error", "detail": "injected fault"}]}))
    rows.add("exchanges", {
        "id": exchange_id, "integration_id": system.id, "integration_name": system.name,
        "customer_id": profile.id, "actor": actor, "kind": kind, "trigger": trigger,
        "correlation_id": headers[CORRELATION_HEADER], "started_at": started,
        "elapsed_ms": elapsed_ms, "method": "POST", "url": system.url,
        "request_headers": headers, "request_body": body, "response_status": status,
        "response_headers": _response_headers(started, elapsed_ms, answer) if status else None,
        "response_body": answer, "response_size": len(answer.encode()) if answer else None,
        "body_truncated": False, "error_kind": error[0] if error else None,
        "error_message": message, "violations": [],
        "result_count": len(results) if error is None else 0, "replay_of": None})
    return exchange_id


def _response_headers(started: datetime, elapsed_ms: float, answer: str | None
                      ) -> dict[str, str]:
    """What the reference adaptor (uvicorn) answers with."""
    return {"date": format_datetime(started + timedelta(milliseconds=elapsed_ms), usegmt=True),
            "server": "uvicorn", "content-length": str(len((answer or "").encode())),
            "content-type": "application/json"}


def _emails(profile: _Profile) -> list[str]:
    return [profile.email.lower()] if profile.email else []


def _phones(profile: _Profile) -> list[str]:
    return [profile.mobile] if profile.mobile else []


def _candidates(profile: _Profile, system: SystemSpec, index: _Index,
                fields: Sequence[str]) -> list[Record]:
    found: dict[str, Record] = {}
    if "email" in fields and profile.email:
        found.update((r.external_customer_id, r) for r in index.by_email.get(
            profile.email.lower(), ()))
    if "mobile" in fields and profile.mobile:
        found.update((r.external_customer_id, r) for r in index.by_mobile.get(
            profile.mobile, ()))
    return list(found.values())


def _query(profile: _Profile, fields: Sequence[str]) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if "email" in fields and profile.email:
        query["emails"] = [profile.email]
    if "mobile" in fields and profile.mobile:
        query["phones"] = [profile.mobile]
    return query


def _autolink(rng: random.Random, rows: _Rows, profile: _Profile, system: SystemSpec,
              index: _Index, linked: set[tuple[int, str]], report: HistoryReport) -> None:
    at = profile.created_at + timedelta(milliseconds=rng.randrange(50, 900))
    query = _query(profile, system.autolink_fields)
    outcome: dict[str, Any] = {"customer_id": profile.id, "integration_id": system.id,
                               "external_customer_id": None, "candidates": 0,
                               "exchange_id": None, "trigger": "customer_created",
                               "actor": "system", "created_at": at}
    if not query:
        fields = " or ".join(system.autolink_fields)
        rows.add("autolink_outcomes", {**outcome, "outcome": "no_field_match",
                                       "reason": f"the profile has no {fields} to match on"})
        report.outcomes["no_field_match"] += 1
        return
    error = ("timeout", None) if rng.random() < AUTOLINK_ERROR_RATE else None
    found = [] if error else _candidates(profile, system, index, system.autolink_fields)
    request = autolink_request(profile.id, profile.name, _emails(profile), _phones(profile))
    exchange_id = _exchange(rng, rows, system, profile, at, kind="autolink",
                            trigger="autolink", actor="system", request=request,
                            results=[r.basic() for r in found], error=error)
    outcome.update(exchange_id=exchange_id, candidates=len(found))
    if error:
        result, reason = "error", f"{system.name} did not answer within 5 s; try again later"
    elif not found:
        result, reason = "no_match", f"{system.name} found no record"
    elif len(found) > 1:
        result, reason = "ambiguous", f"{system.name} found {len(found)} records; link by hand"
    elif (system.id, found[0].external_customer_id) in linked:
        result = "conflict"
        reason = (f"{system.name} record {found[0].external_customer_id} is already linked to "
                  "another profile")
    else:
        result, reason = "linked", f"one {system.name} record matched"
        outcome["external_customer_id"] = found[0].external_customer_id
        _link(rng, rows, profile, system, found[0], at, "auto", "system", linked)
    rows.add("autolink_outcomes", {**outcome, "outcome": result, "reason": reason})
    report.outcomes[result] += 1


def _link(rng: random.Random, rows: _Rows, profile: _Profile, system: SystemSpec,
          record: Record, at: datetime, method: str, actor: str,
          linked: set[tuple[int, str]]) -> None:
    """A link, the DETAILED fetch that follows it, its pulled data and audit event."""
    linked.add((system.id, record.external_customer_id))
    rows.add("links", {"customer_id": profile.id, "integration_id": system.id,
                       "external_customer_id": record.external_customer_id, "method": method,
                       "created_by": actor, "created_at": at})
    later = at + timedelta(milliseconds=rng.randrange(100, 1500))
    detailed = record.detailed()
    request = detailed_request(profile.id, record.external_customer_id, profile.name,
                               _emails(profile), _phones(profile))
    exchange_id = _exchange(rng, rows, system, profile, later, kind="detailed",
                            trigger="autolink" if method == "auto" else "detailed",
                            actor=actor, request=request, results=[detailed], error=None)
    rows.add("pulled_data", {"customer_id": profile.id, "integration_id": system.id,
                             "name": detailed.get("name"), "address": detailed.get("address"),
                             "custom_attributes": detailed.get("customAttributes") or {},
                             "transactions": detailed.get("transactions") or [],
                             "dropped": [], "fetched_at": later, "last_attempt_at": later,
                             "last_error": "", "exchange_id": exchange_id})
    role = "admin" if actor == "system" else "agent"
    rows.add("audit_events", _audit(at, actor, role, "link.created", "customer", profile.id,
                                    None, {"customer_id": profile.id,
                                           "integration_id": system.id,
                                           "integration": system.name,
                                           "external_customer_id":
                                               record.external_customer_id,
                                           "method": method, "created_by": actor,
                                           "created_at": at.isoformat()}))


def _agent_work(rng: random.Random, rows: _Rows, planned: Sequence[_Profile],
                systems: Sequence[SystemSpec], indexes: Mapping[int, _Index],
                linked: set[tuple[int, str]], now: datetime) -> None:
    """Manual links of ambiguous profiles after a search, extra searches, a few unlinks."""
    outcomes = rows.tables.get("autolink_outcomes", [])
    by_id = {p.id: p for p in planned}
    searchable = [s for s in systems if s.flaky or s.name == "Shop"]
    for row in [o for o in outcomes if o["outcome"] == "ambiguous"]:
        if rng.random() >= MANUAL_LINK_SHARE:
            continue
        profile = by_id[row["customer_id"]]
        system = next(s for s in systems if s.id == row["integration_id"])
        at = rows.before(now, row["created_at"],
                         row["created_at"] + timedelta(minutes=rng.randrange(5, 3000)))
        _searches(rng, rows, profile, searchable, indexes, at)
        pick = [r for r in _candidates(profile, system, indexes[system.id], ("email", "mobile"))
                if (system.id, r.external_customer_id) not in linked]
        if pick:
            _link(rng, rows, profile, system, pick[0], at + timedelta(seconds=20), "manual",
                  "agent", linked)
    for _ in range(AGENT_SEARCHES if planned else 0):
        searched = planned[rng.randrange(len(planned))]
        at = rows.before(now, searched.created_at,
                         searched.created_at + timedelta(minutes=rng.randrange(1, 20_000)))
        _searches(rng, rows, searched, searchable, indexes, at)
    _unlinks(rng, rows, systems, now)


def _searches(rng: random.Random, rows: _Rows, profile: _Profile,
              systems: Sequence[SystemSpec], indexes: Mapping[int, _Index],
              at: datetime) -> None:
    fields = {"email": profile.email} if profile.email else {"phone": profile.mobile or ""}
    request = search_request(profile.id, fields)
    for system in systems:
        error = (rng.choice(_FLAKY_ERRORS) if system.flaky and rng.random() < FLAKY_ERROR_RATE
                 else None)
        found = [] if error else _candidates(profile, system, indexes[system.id],
                                             ("email", "mobile"))
        _exchange(rng, rows, system, profile, at, kind="search", trigger="search",
                  actor="agent", request=request, results=[r.basic() for r in found],
                  error=error)


def _unlinks(rng: random.Random, rows: _Rows, systems: Sequence[SystemSpec],
             now: datetime) -> None:
    names = {s.id: s.name for s in systems}
    links = rows.tables.get("links", [])
    removed = [link for link in links if rng.random() < UNLINK_SHARE]
    gone = {(link["customer_id"], link["integration_id"]) for link in removed}
    for link in removed:
        at = min(now, link["created_at"] + timedelta(hours=rng.randrange(1, 200)))
        before = {"customer_id": link["customer_id"], "integration_id": link["integration_id"],
                  "integration": names[link["integration_id"]],
                  "external_customer_id": link["external_customer_id"],
                  "method": link["method"], "created_by": link["created_by"],
                  "created_at": link["created_at"].isoformat()}
        rows.add("audit_events", _audit(at, "agent", "agent", "link.removed", "customer",
                                        link["customer_id"], before, None))
        suppression = {"customer_id": link["customer_id"],
                       "integration_id": link["integration_id"], "created_by": "agent",
                       "created_at": at}
        rows.add("suppressions", suppression)
        rows.add("audit_events", _audit(at, "agent", "agent", "suppression.added", "customer",
                                        link["customer_id"], None,
                                        {**suppression, "integration":
                                         names[link["integration_id"]],
                                         "created_at": at.isoformat()}))
    rows.tables["links"] = [link for link in links
                            if (link["customer_id"], link["integration_id"]) not in gone]
    rows.tables["pulled_data"] = [p for p in rows.tables.get("pulled_data", [])
                                  if (p["customer_id"], p["integration_id"]) not in gone]


# ---------------------------------------------------------------------------------- insert

_TABLES: tuple[tuple[str, Table], ...] = tuple(
    (model.__tablename__, model.__table__)  # type: ignore[misc]
    for model in (Customer, CustomerEmail, CustomerPhone, ExchangeRecord, AutolinkOutcome, Link,
                  PulledData, Suppression, AuditEvent))


def _batches(rows: Sequence[dict[str, Any]]) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start:start + BATCH]


def _insert_all(db: Database, rows: _Rows, report: HistoryReport) -> None:
    """Every table in one transaction, parents first; PostgreSQL's exchange id sequence is
    moved past the ids given explicitly."""
    with db.engine.begin() as connection:
        for name, table in _TABLES:
            batch_rows = rows.tables.get(name, [])
            for batch in _batches(batch_rows):
                connection.execute(insert(table), list(batch))
            if batch_rows:
                report.rows[name] += len(batch_rows)
        if connection.dialect.name == "postgresql":
            connection.execute(text(
                "SELECT setval(pg_get_serial_sequence('exchanges', 'id'), "
                "(SELECT COALESCE(MAX(id), 1) FROM exchanges))"))
    refresh_planner_statistics(db, [table.name for name, table in _TABLES
                                    if rows.tables.get(name)])


def refresh_planner_statistics(db: Database, tables: Sequence[str]) -> None:
    """On PostgreSQL, ANALYZE the tables a bulk load just filled: the demo is used at once,
    before autovacuum has looked at them, and with the empty tables' statistics the planner
    picks nested loops (the Coverage reason counts took 2 s instead of 50 ms). SQLite keeps
    no statistics unless asked, and its plans are tuned without them: left alone."""
    if not tables or db.engine.dialect.name != "postgresql":
        return
    with db.engine.begin() as connection:
        for table in tables:
            connection.execute(text(f'ANALYZE "{table}"'))
