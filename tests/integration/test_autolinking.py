"""Auto-linking against the real reference adaptor (in-process), on SQLite and PostgreSQL.

Every test checks the recorded outcome as well as the link (or its absence), and counts the
requests the adaptor saw where "no request" is the point.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from linker.adaptor import Record, load_dataset
from linker.core.autolink import Outcome
from linker.core.permissions import Actor, Role
from linker.services.autolinking import AutolinkResult, AutolinkService, autolink_customer
from linker.services.errors import InvalidInput, NotFound, PermissionDenied
from linker.store.models import (
    AutolinkOutcome,
    ExchangeRecord,
    Integration,
    Link,
    PulledData,
    Suppression,
)
from tests.integration.world import (
    World,
    dataset,
    record,
    record_held_elsewhere,
    unique_record,
)
from tests.integration.world import race as race_threads

AGENT = Actor("alice", Role.AGENT)
LEAD = Actor("lena", Role.SUPPORT_LEAD)
DEVELOPER = Actor("dev", Role.DEVELOPER)
THREADS = 20


def run(world: World, customer: str, actor: Actor = AGENT,
        trigger: str = "profile_opened") -> list[AutolinkResult]:
    return autolink_customer(world.ctx, actor, customer, trigger=trigger)


def outcomes(world: World, customer: str | None = None) -> list[AutolinkOutcome]:
    query = select(AutolinkOutcome).order_by(AutolinkOutcome.id)
    if customer is not None:
        query = query.where(AutolinkOutcome.customer_id == customer)
    with world.ctx.db.session(readonly=True) as s:
        return list(s.scalars(query))


def link_count(world: World) -> int:
    with world.ctx.db.session(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(Link)) or 0


def shop_record(predicate: Callable[[Record], bool]) -> Record:
    """The first unique (non-duplicate) shop record satisfying ``predicate``."""
    shop = load_dataset("shop")
    duplicates = shop.duplicate_emails()
    return next(r for r in shop.records if r.duplicate_of is None
                and not {e.lower() for e in r.emails} & duplicates and predicate(r))


def phone_of(rec: Record, kind: str) -> str:
    return next(p.e164 for p in rec.phones if p.type == kind)


# ------------------------------------------------------------------------------ linking rule


def test_unique_email_match_links_refreshes_and_records(world: World) -> None:
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    person = unique_record(with_transactions=True)
    customer = world.add_customer("Someone", [person.emails[0]])

    [result] = run(world, customer)

    assert result.outcome is Outcome.LINKED
    assert result.external_customer_id == person.external_customer_id
    assert result.link_id is not None and result.refresh_error is None
    [link] = world.links(customer)
    assert (link.integration_id, link.external_customer_id, link.method, link.created_by) == (
        shop, person.external_customer_id, "auto", "alice")
    autolink_ex, detailed_ex = world.exchanges()
    assert (autolink_ex.kind, autolink_ex.trigger, autolink_ex.actor) == (
        "autolink", "autolink", "alice")
    assert (detailed_ex.kind, detailed_ex.trigger) == ("detailed", "detailed")
    pulled = world.pulled(customer, shop)
    assert pulled is not None and pulled.fetched_at is not None
    assert len(pulled.transactions) == len(person.transactions)
    [row] = outcomes(world, customer)
    assert (row.outcome, row.exchange_id, row.candidates, row.trigger, row.actor) == (
        "linked", autolink_ex.id, 1, "profile_opened", "alice")
    assert row.external_customer_id == person.external_customer_id
    assert len(world.audit("link.created")) == 1


def test_request_is_basic_autolink_with_arrays_main_email_first(world: World) -> None:
    world.add_integration("Shop", "shop", autolink_fields=["email", "mobile"])
    customer = world.add_customer("Ann Other", ["main@example.com", "second@example.com"],
                                  [("+14155552671", "HOME"), ("+14155550123", "MOBILE")])
    run(world, customer)
    [stored] = world.exchanges()
    body = json.loads(stored.request_body)
    assert body["lookupLevel"] == "BASIC" and body["uniqueMatchRequired"] is False
    assert body["query"] == {"id": customer, "name": "Ann Other",
                             "emails": ["main@example.com", "second@example.com"],
                             "phones": ["+14155552671", "+14155550123"]}


def test_email_differing_in_case_and_spaces_links(world: World) -> None:
    rec = record("R-1", emails=["  ADA.Lovelace@Example.COM "])
    world.add_integration("Shop", dataset(rec), autolink_fields=["email"])
    customer = world.add_customer("Ada", ["ada.lovelace@example.com"])
    [result] = run(world, customer)
    assert result.outcome is Outcome.LINKED, result.reason
    assert [link.external_customer_id for link in world.links(customer)] == ["R-1"]


def test_mobile_match_in_another_format_links(world: World) -> None:
    rec = shop_record(lambda r: any(p.type == "MOBILE" for p in r.phones))
    mobile = next(p for p in rec.phones if p.type == "MOBILE")
    assert mobile.original != mobile.e164  # the shop writes "+1 415-234-5678"
    world.add_integration("Shop", "shop", autolink_fields=["mobile"])
    customer = world.add_customer("By phone", [], [(mobile.e164, "MOBILE")])
    [result] = run(world, customer)
    assert result.outcome is Outcome.LINKED, result.reason
    assert result.external_customer_id == rec.external_customer_id
    assert "mobile phone" in result.reason


def test_home_phone_never_auto_links(world: World) -> None:
    rec = shop_record(lambda r: any(p.type == "HOME" for p in r.phones))
    home = phone_of(rec, "HOME")
    world.add_integration("Shop", "shop", autolink_fields=["mobile"])
    customer = world.add_customer("Home owner", [], [(home, "MOBILE")])
    [result] = run(world, customer)
    assert result.outcome is Outcome.NO_FIELD_MATCH
    assert f"{home} is HOME" in result.reason
    assert world.links(customer) == []
    assert outcomes(world, customer)[0].outcome == "no_field_match"


def test_profile_home_phone_is_not_sent_as_a_mobile_candidate(world: World) -> None:
    rec = shop_record(lambda r: any(p.type == "MOBILE" for p in r.phones))
    world.add_integration("Shop", "shop", autolink_fields=["mobile"])
    customer = world.add_customer("Landline", [], [(phone_of(rec, "MOBILE"), "HOME")])
    [result] = run(world, customer)
    assert result.outcome is Outcome.SKIPPED
    assert "MOBILE phone" in result.reason
    assert world.calls("Shop") == 0 and world.exchanges() == []


def test_two_results_from_a_duplicate_account_are_ambiguous(world: World) -> None:
    shop = load_dataset("shop")
    duplicate = next(r for r in shop.records if r.duplicate_of is not None)
    world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Twin", [duplicate.emails[0]])
    [result] = run(world, customer)
    assert result.outcome is Outcome.AMBIGUOUS
    assert result.candidates == 2
    assert result.reason.startswith("2 results came back; auto-linking needs exactly one")
    assert duplicate.external_customer_id in result.reason
    assert world.links(customer) == []
    [row] = outcomes(world, customer)
    assert (row.outcome, row.candidates, row.external_customer_id) == ("ambiguous", 2, None)


def test_duplicate_results_fault_is_ambiguous(world: World) -> None:
    person = unique_record()
    world.add_integration("Shop", "shop", faults=["duplicate-results"], autolink_fields=["email"])
    customer = world.add_customer("Someone", [person.emails[0]])
    [result] = run(world, customer)
    assert (result.outcome, result.candidates) == (Outcome.AMBIGUOUS, 2)
    assert world.links(customer) == []


def test_one_result_without_a_matching_field(world: World) -> None:
    # The adaptor finds the record by email, but only the mobile field is enabled.
    rec = record("R-1", emails=["ada@example.com"], phones=[("+14155550000", "MOBILE")])
    world.add_integration("Shop", dataset(rec), autolink_fields=["mobile"])
    customer = world.add_customer("Ada", ["ada@example.com"], [("+14155552671", "MOBILE")])
    [result] = run(world, customer)
    assert (result.outcome, result.candidates) == (Outcome.NO_FIELD_MATCH, 1)
    assert "+14155550000" in result.reason and "+14155552671" in result.reason
    assert world.links(customer) == []


def test_no_result_is_no_match(world: World) -> None:
    world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Nobody", ["nobody@nowhere.example"])
    [result] = run(world, customer)
    assert (result.outcome, result.candidates) == (Outcome.NO_MATCH, 0)
    assert result.exchange_id is not None


def test_record_linked_to_another_profile_is_a_conflict(world: World) -> None:
    _, holder, customer = record_held_elsewhere(world)
    [result] = run(world, customer)
    assert result.outcome is Outcome.CONFLICT
    assert "R-1" in result.reason and holder in result.reason
    assert world.links(customer) == []
    [row] = outcomes(world, customer)
    assert (row.outcome, row.external_customer_id) == ("conflict", "R-1")
    assert row.exchange_id is not None
    # No DETAILED lookup was made for a conflict.
    assert [e.kind for e in world.exchanges()] == ["autolink"]


def test_suppressed_pair_sends_nothing(world: World) -> None:
    person = unique_record()
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Unlinked before", [person.emails[0]])
    with world.ctx.db.session() as s:
        s.add(Suppression(customer_id=customer, integration_id=shop, created_by="bob"))
    [result] = run(world, customer)
    assert result.outcome is Outcome.SUPPRESSED
    assert "unlinked" in result.reason
    assert world.calls("Shop") == 0 and world.exchanges() == []
    assert [r.outcome for r in outcomes(world, customer)] == ["suppressed"]
    assert world.links(customer) == []


def test_integration_without_autolink_fields_sends_no_request(world: World) -> None:
    person = unique_record()
    shop = world.add_integration("Shop", "shop")
    with world.ctx.db.session() as s:
        integration = s.get(Integration, shop)
        assert integration is not None
        integration.autolink_enabled = True  # on, but no field
    customer = world.add_customer("Someone", [person.emails[0]])
    [result] = run(world, customer)
    assert result.outcome is Outcome.SKIPPED
    assert "no auto-linking field" in result.reason
    assert world.calls("Shop") == 0 and world.exchanges() == []
    [row] = outcomes(world, customer)
    assert (row.outcome, row.exchange_id) == ("skipped", None)


def test_inactive_and_autolink_off_integrations_get_no_attempt(world: World) -> None:
    person = unique_record()
    world.add_integration("Off", "shop")
    world.add_integration("Inactive", "shop", autolink_fields=["email"], active=False)
    customer = world.add_customer("Someone", [person.emails[0]])
    assert run(world, customer) == []
    assert outcomes(world) == [] and world.calls("Off") + world.calls("Inactive") == 0


def test_adaptor_failure_is_an_error_with_its_exchange(world: World) -> None:
    person = unique_record()
    world.add_integration("Shop", "shop", faults=["status:500"], autolink_fields=["email"])
    customer = world.add_customer("Someone", [person.emails[0]])
    [result] = run(world, customer)
    assert (result.outcome, result.error_kind) == (Outcome.ERROR, "http_status")
    assert "HTTP 500" in result.reason
    [stored] = world.exchanges()
    assert result.exchange_id == stored.id and stored.error_kind == "http_status"
    [row] = outcomes(world, customer)
    assert (row.outcome, row.exchange_id) == ("error", stored.id)
    assert world.links(customer) == []


def test_unusable_adaptor_setting_is_an_error_without_a_request(world: World) -> None:
    person = unique_record()
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    with world.ctx.db.session() as s:
        integration = s.get(Integration, shop)
        assert integration is not None
        integration.url = "ftp://shop.test/lookup"
    customer = world.add_customer("Someone", [person.emails[0]])
    [result] = run(world, customer)
    assert result.outcome is Outcome.ERROR and result.exchange_id is None
    assert "Shop cannot be called" in result.reason and "http(s)" in result.reason
    assert world.calls("Shop") == 0 and world.exchanges() == []
    assert [r.outcome for r in outcomes(world, customer)] == ["error"]


def test_every_attempt_records_an_outcome_and_linked_pairs_are_left_alone(world: World
                                                                          ) -> None:
    person = unique_record()
    world.add_integration("Shop", "shop", autolink_fields=["email"])
    world.add_integration("Flaky", "shop", faults=["status:503"], autolink_fields=["email"])
    world.add_integration("Travel", "travel", autolink_fields=["mobile"])
    customer = world.add_customer("Someone", [person.emails[0]])

    first = run(world, customer, trigger="customer_created")
    assert [(r.integration_name, r.outcome) for r in first] == [
        ("Flaky", Outcome.ERROR), ("Shop", Outcome.LINKED), ("Travel", Outcome.SKIPPED)]
    rows = outcomes(world, customer)
    assert len(rows) == 3
    assert {r.trigger for r in rows} == {"customer_created"} and {r.actor for r in rows} == {
        "alice"}

    second = run(world, customer)  # Shop is linked now: only the other two are attempted
    assert [r.integration_name for r in second] == ["Flaky", "Travel"]
    assert len(outcomes(world, customer)) == 5
    assert len(world.links(customer)) == 1


class FailDetailed:
    """Wraps an adaptor app: DETAILED lookups get HTTP 503, everything else passes through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if b'"DETAILED"' in body:
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"message":"down"}'})
            return
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def test_failed_refresh_after_link_keeps_the_link_and_says_why(world: World) -> None:
    rec = record("R-1", emails=["ada@example.com"])
    shop = world.add_integration("Shop", dataset(rec), autolink_fields=["email"])
    world.router.apps["shop.test"] = FailDetailed(world.router.apps["shop.test"])
    customer = world.add_customer("Ada", ["ada@example.com"])
    [result] = run(world, customer)
    assert result.outcome is Outcome.LINKED
    assert result.refresh_error is not None and "HTTP 503" in result.refresh_error
    assert [link.external_customer_id for link in world.links(customer)] == ["R-1"]
    pulled = world.pulled(customer, shop)
    assert pulled is not None and "HTTP 503" in pulled.last_error
    assert [e.kind for e in world.exchanges()] == ["autolink", "detailed"]


# --------------------------------------------------------------------------- errors and roles


def test_unknown_customer_and_trigger_are_refused(world: World) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        run(world, "missing")
    customer = world.add_customer("Someone", ["someone@example.com"])
    with pytest.raises(InvalidInput, match="unknown trigger"):
        run(world, customer, trigger="cron")


@pytest.mark.parametrize(("actor", "trigger", "allowed"), [
    (AGENT, "profile_opened", True), (LEAD, "profile_opened", True),
    (DEVELOPER, "customer_created", True),
    (AGENT, "backfill", False), (Actor("root", Role.ADMIN), "backfill", True),
    (DEVELOPER, "debugger", False), (AGENT, "debugger", False),
    (Actor("root", Role.ADMIN), "debugger", True),
])
def test_permissions_per_trigger(world: World, actor: Actor, trigger: str, allowed: bool
                                 ) -> None:
    world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Someone", ["nobody@nowhere.example"])
    if allowed:
        assert [r.outcome for r in run(world, customer, actor, trigger)] == [Outcome.NO_MATCH]
        assert outcomes(world)[0].trigger == trigger
    else:
        with pytest.raises(PermissionDenied):
            run(world, customer, actor, trigger)
        assert outcomes(world) == [] and world.calls("Shop") == 0


# -------------------------------------------------------------------------------- concurrency


def race(work: Callable[[int], list[AutolinkResult]]) -> tuple[list[AutolinkResult],
                                                               list[BaseException]]:
    """Run ``work(i)`` in THREADS threads released together; collect results and crashes."""
    outcomes = race_threads(work, THREADS)
    crashes = [o for o in outcomes if isinstance(o, BaseException)]
    results = [r for o in outcomes if not isinstance(o, BaseException) for r in o]
    return results, crashes


def test_twenty_attempts_for_one_customer_make_one_link(world: World) -> None:
    person = unique_record()
    world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Someone", [person.emails[0]])
    attempted: list[int] = []

    def work(i: int) -> list[AutolinkResult]:
        found = run(world, customer)
        attempted.append(len(found))
        return found

    results, crashes = race(work)

    assert crashes == []
    # A thread that looked after the link was committed has nothing to attempt (the profile
    # is linked); every other one attempted and lost with a conflict.
    assert sorted(set(attempted)) in ([1], [0, 1]) and len(attempted) == THREADS
    kinds = [r.outcome for r in results]
    assert kinds.count(Outcome.LINKED) == 1
    assert kinds.count(Outcome.CONFLICT) == len(results) - 1, kinds
    assert len(results) >= 2
    assert all("already linked" in r.reason for r in results if r.outcome is Outcome.CONFLICT)
    assert link_count(world) == 1
    assert len(outcomes(world, customer)) == len(results)
    assert len(world.audit("link.created")) == 1


def test_twenty_customers_matching_one_record_make_one_link(world: World) -> None:
    emails = [f"person{i}@example.com" for i in range(THREADS)]
    rec = record("R-1", emails=emails)
    world.add_integration("Shop", dataset(rec), autolink_fields=["email"])
    customers = [world.add_customer(f"Person {i}", [email]) for i, email in enumerate(emails)]

    results, crashes = race(lambda i: run(world, customers[i]))

    assert crashes == []
    kinds = [r.outcome for r in results]
    assert kinds.count(Outcome.LINKED) == 1
    assert kinds.count(Outcome.CONFLICT) == THREADS - 1
    [winner] = [r.customer_id for r in results if r.outcome is Outcome.LINKED]
    assert all(winner in r.reason for r in results if r.outcome is Outcome.CONFLICT)
    assert link_count(world) == 1
    with world.ctx.db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(AutolinkOutcome)) == THREADS
        assert s.scalar(select(func.count()).select_from(PulledData)) == 1


# ------------------------------------------------------------------------------------- reports


def test_recent_outcomes_and_counts(world: World) -> None:
    person = unique_record()
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    flaky = world.add_integration("Flaky", "shop", faults=["status:500"],
                                  autolink_fields=["email"])
    linked = world.add_customer("Linked", [person.emails[0]])
    nobody = world.add_customer("Nobody", ["nobody@nowhere.example"])
    run(world, linked)
    run(world, nobody)
    service = AutolinkService(world.ctx)

    recent = service.recent_outcomes(LEAD)
    assert len(recent) == 4
    assert recent[0].created_at >= recent[-1].created_at
    only_shop = service.recent_outcomes(LEAD, integration_id=shop)
    assert {(o.customer_name, o.outcome) for o in only_shop} == {
        ("Linked", Outcome.LINKED), ("Nobody", Outcome.NO_MATCH)}
    errors = service.recent_outcomes(LEAD, outcome="error")
    assert {o.integration_name for o in errors} == {"Flaky"} and len(errors) == 2
    assert all(o.exchange_id is not None for o in errors)
    later = recent[0].created_at + timedelta(seconds=1)
    assert service.recent_outcomes(LEAD, since=later) == []
    assert len(service.recent_outcomes(LEAD, limit=1)) == 1

    counts = service.outcome_counts(LEAD)
    assert counts.attempts == 4
    assert (counts.total["linked"], counts.total["no_match"], counts.total["error"]) == (1, 1, 2)
    assert counts.total["ambiguous"] == 0
    assert counts.by_integration[flaky]["error"] == 2  # keyed by integration id
    assert counts.by_integration[shop] == {**{o.value: 0 for o in Outcome}, "linked": 1,
                                           "no_match": 1}
    assert service.outcome_counts(LEAD, since=later).attempts == 0

    with pytest.raises(InvalidInput, match="unknown outcome"):
        service.recent_outcomes(LEAD, outcome="maybe")
    with pytest.raises(PermissionDenied):
        service.recent_outcomes(AGENT)
    with pytest.raises(PermissionDenied):
        service.outcome_counts(AGENT)


def test_exchanges_of_attempts_are_stored_with_customer_and_integration(world: World) -> None:
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    customer = world.add_customer("Nobody", ["nobody@nowhere.example"])
    run(world, customer)
    with world.ctx.db.session(readonly=True) as s:
        [stored] = s.scalars(select(ExchangeRecord))
        assert (stored.customer_id, stored.integration_id, stored.integration_name) == (
            customer, shop, "Shop")
