"""Backfill: dry run, real run, idempotent re-run, resume after cancel, shards, the CLI.

Adaptors run in-process (ASGITransport) except for the CLI and loopback tests, which serve the
reference adaptor over a real socket with BackgroundServer.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import delete, func, inspect, select

from linker.adaptor import BackgroundServer, create_app, load_dataset
from linker.cli import autolink_cmd
from linker.cli.main import main
from linker.config import Settings
from linker.contract import detailed_request
from linker.core.autolink import Outcome
from linker.core.permissions import SYSTEM, Actor, Role
from linker.lookup import LookupClient
from linker.services import leases
from linker.services.backfill import (
    TELLING,
    BackfillAttempt,
    BackfillProgress,
    BackfillService,
    BackfillSummary,
    in_shard,
    listing_rank,
    parse_shard,
    run_key,
)
from linker.services.backfill import _ResultLog as ResultLog
from linker.services.backfill_jobs import BackfillJobs, RunStatus
from linker.services.backfill_live import LiveRun
from linker.services.errors import InvalidInput, PermissionDenied
from linker.services.leases import BackfillBusy
from linker.services.linking import create_link
from linker.services.profile import ProfileService
from linker.store.database import Database, alembic_config
from linker.store.models import (
    AuditEvent,
    AutolinkOutcome,
    BackfillLease,
    ExchangeRecord,
    Integration,
    Link,
    PulledData,
    Suppression,
)
from linker.store.models import (
    BackfillProgress as ProgressRow,
)
from tests.integration.world import SIGNING_KEY, World

ADMIN = Actor("root", Role.ADMIN)
LINKABLE = 8


@dataclass
class Population:
    """Customers of a backfill test, by what the backfill should do with them."""

    shop: int
    held: str
    """The Shop record ``already_linked`` holds and ``taken`` matches."""
    linkable: list[str]
    nobody: list[str]
    ambiguous: str
    suppressed: str
    already_linked: str
    taken: str
    """Matches a record that another profile (``already_linked``) holds: a conflict."""

    @property
    def candidates(self) -> list[str]:
        """Every profile the backfill should look at (all but ``already_linked``)."""
        return [*self.linkable, *self.nobody, self.ambiguous, self.suppressed, self.taken]


def populate(world: World) -> Population:
    shop_data = load_dataset("shop")
    duplicates = shop_data.duplicate_emails()
    unique = [r for r in shop_data.records if r.duplicate_of is None and r.emails
              and not {e.lower() for e in r.emails} & duplicates]
    duplicate = next(r for r in shop_data.records if r.duplicate_of is not None)
    shop = world.add_integration("Shop", "shop", autolink_fields=["email"])
    linkable = [world.add_customer(f"Linkable {i}", [r.emails[0]])
                for i, r in enumerate(unique[:LINKABLE])]
    nobody = [world.add_customer(f"Nobody {i}", [f"nobody{i}@nowhere.example"])
              for i in range(3)]
    ambiguous = world.add_customer("Twin", [duplicate.emails[0]])
    suppressed = world.add_customer("Unlinked", [unique[LINKABLE].emails[0]])
    held = unique[LINKABLE + 1]
    already = world.add_customer("Holder", ["holder@example.com"])
    taken = world.add_customer("Taken", [held.emails[0]])
    with world.ctx.db.session() as s:
        s.add(Suppression(customer_id=suppressed, integration_id=shop, created_by="bob"))
        create_link(s, customer_id=already, integration_id=shop,
                    external_customer_id=held.external_customer_id, method="manual",
                    actor=ADMIN)
    return Population(shop, held.external_customer_id, linkable, nobody, ambiguous,
                      suppressed, already, taken)


def count(world: World, model: type, *where: object) -> int:
    with world.ctx.db.session(readonly=True) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def column(world: World, attribute: Any) -> list[Any]:
    with world.ctx.db.session(readonly=True) as s:
        return list(s.scalars(select(attribute)))


def backfill(world: World, **kwargs: object) -> BackfillSummary:
    return BackfillService(world.ctx).run(ADMIN, **kwargs)  # type: ignore[arg-type]


EXPECTED = {"linked": LINKABLE, "no_match": 3, "ambiguous": 1, "suppressed": 1, "conflict": 1}


def expected_counts() -> dict[str, int]:
    return {**{o.value: 0 for o in Outcome}, **EXPECTED}


# ---------------------------------------------------------------------------------- dry run


def test_dry_run_links_nothing_and_records_only_exchanges(world: World) -> None:
    pop = populate(world)
    summary = backfill(world, dry_run=True)

    assert summary.dry_run and not summary.cancelled
    assert summary.counts == expected_counts()
    assert (summary.total, summary.done) == (len(pop.candidates), len(pop.candidates))
    assert count(world, Link) == 1  # only the pre-existing manual link
    assert count(world, AutolinkOutcome) == 0 and count(world, ProgressRow) == 0
    exchanges = world.exchanges()
    assert len(exchanges) == len(pop.candidates) - 1  # the suppressed profile sends nothing
    assert {(e.trigger, e.kind, e.actor) for e in exchanges} == {
        ("backfill", "autolink", "root (backfill dry run)")}
    assert count(world, AuditEvent, AuditEvent.action == "backfill.run") == 0


def test_dry_run_lists_each_profile_with_its_reason(world: World) -> None:
    pop = populate(world)
    summary = backfill(world, dry_run=True)

    assert summary.results_left_out == 0
    by_customer = {r.customer_id: r for r in summary.results}
    assert len(summary.results) == len(by_customer) == len(pop.candidates)
    # would-be links first, then the other telling outcomes, then the rest; each in order made
    assert [r.customer_id for r in summary.results] == sorted(
        pop.candidates, key=lambda c: (listing_rank(by_customer[c].outcome), c))
    assert {r.integration_name for r in summary.results} == {"Shop"}
    exchange_ids = {e.id for e in world.exchanges()}

    for i, cid in enumerate(pop.linkable):  # would link
        entry = by_customer[cid]
        assert (entry.outcome, entry.customer_name) == (Outcome.LINKED, f"Linkable {i}")
        assert entry.external_customer_id is not None
        assert f"record {entry.external_customer_id}" in entry.reason
        assert entry.exchange_id in exchange_ids
    twin = by_customer[pop.ambiguous]
    assert (twin.outcome, twin.customer_name) == (Outcome.AMBIGUOUS, "Twin")
    assert "2 results came back; auto-linking needs exactly one" in twin.reason
    assert twin.external_customer_id is None and twin.exchange_id in exchange_ids
    taken = by_customer[pop.taken]
    assert (taken.outcome, taken.customer_name) == (Outcome.CONFLICT, "Taken")
    assert taken.external_customer_id == pop.held
    assert f"already linked to profile {pop.already_linked}" in taken.reason
    assert "would not be linked" in taken.reason
    assert {by_customer[c].outcome for c in pop.nobody} == {Outcome.NO_MATCH}
    suppressed = by_customer[pop.suppressed]
    assert suppressed.outcome is Outcome.SUPPRESSED and suppressed.exchange_id is None
    assert pop.already_linked not in by_customer

    # ...and still nothing was linked or recorded.
    assert count(world, Link) == 1
    assert count(world, AutolinkOutcome) == 0 and count(world, ProgressRow) == 0


def test_results_are_bounded_keeping_the_telling_outcomes(world: World) -> None:
    pop = populate(world)
    telling = LINKABLE + 2  # the would-be links, the ambiguous one and the conflict

    few = backfill(world, dry_run=True, max_results=5, batch_size=4)
    assert len(few.results) == 5 and few.results_left_out == len(pop.candidates) - 5
    assert all(r.outcome in TELLING for r in few.results)
    assert few.counts == expected_counts()  # the counts still cover every attempt

    more = backfill(world, dry_run=True, max_results=telling + 1, batch_size=4)
    assert more.results_left_out == len(pop.candidates) - telling - 1
    outcomes = [r.outcome for r in more.results]
    assert sum(o in TELLING for o in outcomes) == telling
    ranks = [listing_rank(o) for o in outcomes]  # would-be links first, each in order made
    assert ranks == sorted(ranks)
    for rank in set(ranks):
        ids = [r.customer_id for r in more.results if listing_rank(r.outcome) == rank]
        assert ids == sorted(ids)

    none = backfill(world, dry_run=True, max_results=0)
    assert none.results == () and none.results_left_out == len(pop.candidates)
    with pytest.raises(InvalidInput, match="max_results"):
        backfill(world, dry_run=True, max_results=-1)


def test_result_log_memory_is_bounded() -> None:
    log = ResultLog(1000)
    for i in range(20_000):  # mostly no match, every 7th one would link
        outcome = Outcome.LINKED if i % 7 == 0 else Outcome.NO_MATCH
        log.add(BackfillAttempt(f"c{i:05d}", f"P {i}", "Shop", outcome, "why"))
        assert len(log._heap) <= 1000
    entries = log.entries()
    assert len(entries) == 1000 and log.left_out == 19_000
    assert all(e.outcome is Outcome.LINKED for e in entries)  # 2,858 telling ones: first 1,000
    assert [e.customer_id for e in entries] == [f"c{i:05d}" for i in range(0, 7000, 7)]


def test_results_list_would_be_links_first_then_the_other_telling_outcomes() -> None:
    """The page's caption says would-be links come first: the listing is ordered so, then
    ambiguous, conflicting, failed and the rest, each in the order the attempts were made."""
    arrivals = [Outcome.NO_MATCH, Outcome.ERROR, Outcome.NO_MATCH, Outcome.CONFLICT,
                Outcome.LINKED, Outcome.AMBIGUOUS, Outcome.SKIPPED, Outcome.LINKED]
    log = ResultLog(100)
    for i, outcome in enumerate(arrivals):
        log.add(BackfillAttempt(f"c{i}", f"P {i}", "Shop", outcome, "why"))
    assert [(e.outcome, e.customer_id) for e in log.entries()] == [
        (Outcome.LINKED, "c4"), (Outcome.LINKED, "c7"), (Outcome.AMBIGUOUS, "c5"),
        (Outcome.CONFLICT, "c3"), (Outcome.ERROR, "c1"), (Outcome.NO_MATCH, "c0"),
        (Outcome.NO_MATCH, "c2"), (Outcome.SKIPPED, "c6")]


# ---------------------------------------------------------------------------------- real run


def test_real_run_links_refreshes_and_records(world: World) -> None:
    pop = populate(world)
    seen: list[BackfillProgress] = []
    summary = backfill(world, concurrency=4, batch_size=5, progress=seen.append)

    assert summary.counts == expected_counts()
    assert summary.done == summary.total == len(pop.candidates) and summary.resumed == 0
    assert summary.profiles_per_second > 0 and summary.integrations == ("Shop",)
    assert [p.done for p in seen] == [5, 10, 14] and seen[-1].total == 14
    assert summary.results_left_out == 0 and len(summary.results) == len(pop.candidates)
    listed = {r.customer_id: r for r in summary.results}
    assert {c for c, r in listed.items() if r.outcome is Outcome.LINKED} == set(pop.linkable)
    assert listed[pop.taken].outcome is Outcome.CONFLICT
    assert seen[-1].counts == expected_counts()
    with world.ctx.db.session(readonly=True) as s:
        links = {link.customer_id: link for link in s.scalars(select(Link))}
        rows = list(s.scalars(select(AutolinkOutcome)))
        kinds = {e.kind for e in s.scalars(select(ExchangeRecord))}
    assert set(links) == {*pop.linkable, pop.already_linked}
    assert all(listed[c].external_customer_id == links[c].external_customer_id
               for c in pop.linkable)
    assert all(links[c].method == "auto" and links[c].created_by == "root"
               for c in pop.linkable)
    assert len(rows) == len(pop.candidates)
    assert {(r.trigger, r.actor) for r in rows} == {("backfill", "root")}
    assert kinds == {"autolink", "detailed"}
    # the profile linked before the run had no pulled data: the run finished it first
    assert (summary.healed, summary.heal_failed) == (1, 0)
    assert count(world, ExchangeRecord, ExchangeRecord.kind == "detailed") == LINKABLE + 1
    assert all(world.pulled(c, pop.shop) is not None for c in pop.linkable)
    assert count(world, ProgressRow) == 0  # a completed run clears its progress
    [audit] = world.audit("backfill.run")
    assert audit.after is not None and audit.after["done"] == len(pop.candidates)


def test_the_next_batch_is_launched_before_the_running_one_ends(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """No request slot idles between batches: batch N+1 is planned (and its lookups started)
    while batch N runs; progress still comes batch by batch, in order, each batch once."""
    pop = populate(world)
    events: list[tuple[str, Any]] = []
    plan = BackfillService._plan

    def planning(self: BackfillService, state: Any, batch: Any) -> Any:
        events.append(("plan", list(batch)))
        return plan(self, state, batch)

    monkeypatch.setattr(BackfillService, "_plan", planning)
    summary = backfill(world, batch_size=4, progress=lambda p: events.append(("done", p.done)))
    assert summary.done == len(pop.candidates) == 14
    assert [what if what == "plan" else value for what, value in events] == [
        "plan", "plan", 4, "plan", 8, "plan", 12, 14]
    planned = [cid for what, value in events if what == "plan" for cid in value]
    assert planned == sorted(pop.candidates)  # every profile planned once, in order


def test_the_detailed_request_after_a_new_link_carries_the_profile(world: World) -> None:
    """The backfill builds the DETAILED request from its snapshots instead of reloading the
    link: the same request ``plan_refresh`` builds (normalised emails and every phone in
    position order, custom attributes flat), checked byte for byte."""
    shop_data = load_dataset("shop")
    duplicates = shop_data.duplicate_emails()
    record = next(r for r in shop_data.records if r.duplicate_of is None and r.emails
                  and not {e.lower() for e in r.emails} & duplicates)
    world.add_integration("Shop", "shop", autolink_fields=["email"])
    phones = [("+15013299802", "HOME"), ("+15013299800", "MOBILE"), ("+15013299801", "WORK")]
    customer = world.add_customer("Detailed Person", [record.emails[0], "Second@Example.com"],
                                  phones=phones,
                                  custom_attributes={"tier": "gold", "id": "reserved-key"})
    summary = backfill(world)
    assert summary.counts["linked"] == 1, summary.results
    with world.ctx.db.session(readonly=True) as s:
        stored = s.scalars(select(ExchangeRecord.request_body).where(
            ExchangeRecord.kind == "detailed", ExchangeRecord.customer_id == customer)).one()
    expected = detailed_request(customer, record.external_customer_id, name="Detailed Person",
                                emails=[record.emails[0].lower(), "second@example.com"],
                                phones=[p for p, _ in phones],
                                custom_attributes={"tier": "gold", "id": "reserved-key"})
    assert stored == expected.body().decode()


def test_rerun_links_nothing_twice(world: World) -> None:
    pop = populate(world)
    backfill(world)
    again = backfill(world)
    # Linked profiles are no longer candidates; the others are attempted again.
    assert again.total == len(pop.candidates) - LINKABLE
    assert again.counts["linked"] == 0
    assert again.counts["no_match"] == 3 and again.counts["conflict"] == 1
    assert count(world, Link) == LINKABLE + 1
    assert count(world, AuditEvent, AuditEvent.action == "link.created") == LINKABLE + 1


def test_two_workers_at_once_never_link_twice(world: World) -> None:
    # One backfill per integration at a time: the loser of the race is refused (or, when the
    # winner finished first, finds nothing left to link). Either way nothing is linked twice.
    pop = populate(world)
    summaries: list[BackfillSummary] = []
    refused: list[BackfillBusy] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work() -> None:
        try:
            barrier.wait(timeout=60)
            summaries.append(backfill(world, concurrency=4, batch_size=3))
        except BackfillBusy as exc:
            refused.append(exc)
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(summaries) + len(refused) == 2 and summaries
    assert count(world, Link) == LINKABLE + 1
    linked = sum(s.counts["linked"] for s in summaries)
    assert linked == LINKABLE
    assert sum(s.counts["conflict"] for s in summaries) == len(summaries)  # pop.taken only
    with world.ctx.db.session(readonly=True) as s:
        per_customer = s.execute(select(Link.customer_id, func.count()).group_by(
            Link.customer_id)).all()
    assert all(n == 1 for _, n in per_customer)
    assert set(pop.linkable) <= {c for c, _ in per_customer}


def test_a_second_backfill_is_told_who_runs_the_first(world: World) -> None:
    populate(world)
    refusals: list[str] = []

    def start_another(progress: BackfillProgress) -> None:
        if not refusals:
            with pytest.raises(BackfillBusy) as info:
                backfill(world)
            refusals.append(str(info.value))

    first = backfill(world, batch_size=3, progress=start_another)
    assert first.done == first.total and not first.cancelled
    assert len(refusals) == 1
    assert refusals[0].startswith("a backfill of Shop is already running: root on ")
    assert f"(pid {os.getpid()}) started it at " in refusals[0]
    assert count(world, BackfillLease) == 0  # released at the end
    again = backfill(world)  # free again
    assert again.counts["linked"] == 0


def test_shards_of_one_split_run_side_by_side_but_overlaps_are_refused(world: World) -> None:
    populate(world)
    seen: list[str] = []

    def overlapping(progress: BackfillProgress) -> None:
        if seen:
            return
        shard_run(world, (1, 2))  # the other half: allowed meanwhile
        seen.append("1/2 ran")
        for shard in ((0, 2), (0, 3), None):
            with pytest.raises(BackfillBusy):
                shard_run(world, shard)  # None: the chunks of a whole run
            seen.append(f"{shard} refused")
        with pytest.raises(BackfillBusy):
            backfill(world)
        seen.append("whole run refused")

    shard_run(world, (0, 2), chunk_size=2, progress=overlapping)
    assert seen == ["1/2 ran", "(0, 2) refused", "(0, 3) refused", "None refused",
                    "whole run refused"]


def test_a_crashed_runs_lease_expires(world: World) -> None:
    shop = populate(world).shop
    now = world.ctx.now()
    stale = leases.acquire(world.ctx.db, [(shop, "Shop")], "root on crashed-host (pid 1)",
                           now - timedelta(seconds=leases.LEASE_TTL_S + 1))
    assert stale.integration_ids == (shop,)
    summary = backfill(world)  # nobody renewed it: taken over
    assert summary.counts["linked"] == LINKABLE
    live = leases.acquire(world.ctx.db, [(shop, "Shop")], "root on busy-host (pid 2)", now)
    with pytest.raises(BackfillBusy, match="root on busy-host"):
        backfill(world)
    leases.release(world.ctx.db, live)


def test_a_renewal_that_finds_the_lease_taken_stops_the_run(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(world)
    keepers: list[leases.LeaseKeeper] = []
    enter = leases.LeaseKeeper.__enter__

    def remember(self: leases.LeaseKeeper) -> leases.LeaseKeeper:
        keepers.append(self)
        return enter(self)

    def taken_over(progress: BackfillProgress) -> None:
        with world.ctx.db.session() as s:  # another run took the (expired) lease meanwhile
            s.scalars(select(BackfillLease)).one().token = "another-run"
        assert keepers[0].renew_now() is False

    monkeypatch.setattr(leases.LeaseKeeper, "__enter__", remember)
    summary = backfill(world, batch_size=3, progress=taken_over)
    # the batch that ended and the one launched behind it complete; no third one starts
    assert summary.lease_lost and summary.cancelled and summary.done == 2 * 3
    assert count(world, BackfillLease) == 1  # the other run's lease is left alone


# ------------------------------------------------------------------ healing after a crash


def forget_pulled_data(world: World, customers: list[str], shop: int) -> None:
    """The state a run killed between linking and the DETAILED lookup leaves: links, no data."""
    with world.ctx.db.session() as s:
        s.execute(delete(PulledData).where(PulledData.customer_id.in_(customers),
                                           PulledData.integration_id == shop))


def test_links_left_without_data_are_finished_by_the_next_run(world: World) -> None:
    pop = populate(world)
    backfill(world)
    forget_pulled_data(world, pop.linkable, pop.shop)
    again = backfill(world)
    assert (again.healed, again.heal_failed) == (LINKABLE, 0)
    assert again.counts["linked"] == 0
    assert all(world.pulled(c, pop.shop).fetched_at is not None  # type: ignore[union-attr]
               for c in pop.linkable)
    third = backfill(world)
    assert (third.healed, third.heal_failed) == (0, 0)  # nothing left to finish


def test_a_failing_heal_is_counted_and_retried(world: World) -> None:
    pop = populate(world)
    backfill(world)
    forget_pulled_data(world, pop.linkable[:2], pop.shop)
    world.serve("Shop", "shop", "status:503")
    failing = backfill(world)
    assert (failing.healed, failing.heal_failed) == (0, 2)
    world.serve("Shop", "shop")
    assert backfill(world).healed == 2


def test_opening_the_profile_finishes_a_link_without_data(world: World) -> None:
    pop = populate(world)
    backfill(world)
    forget_pulled_data(world, pop.linkable[:1], pop.shop)
    opened = ProfileService(world.ctx).open(ADMIN, pop.linkable[0])
    assert [r.ok for r in opened.refreshes] == [True]
    assert world.pulled(pop.linkable[0], pop.shop) is not None


# --------------------------------------------------------------------------- cancel and resume


def test_cancel_before_start_does_nothing(world: World) -> None:
    populate(world)
    cancel = threading.Event()
    cancel.set()
    summary = backfill(world, cancel=cancel)
    assert summary.cancelled and summary.done == 0 and summary.attempts == 0
    assert world.calls("Shop") == 0 and count(world, AutolinkOutcome) == 0


def test_cancelled_run_resumes_where_it_stopped(world: World) -> None:
    pop = populate(world)
    cancel = threading.Event()

    def cancel_at_first_progress(progress: BackfillProgress) -> None:
        cancel.set()

    first = backfill(world, batch_size=4, progress=cancel_at_first_progress, cancel=cancel)
    # the first batch and the one launched behind it complete; no third one starts
    assert first.cancelled and first.done == 8 and first.total == len(pop.candidates)
    assert count(world, ProgressRow) == 8
    assert count(world, AutolinkOutcome) == 8
    done_first = set(column(world, ProgressRow.customer_id))

    second = backfill(world, batch_size=4)
    assert not second.cancelled
    assert second.resumed == 8 - sum(1 for c in done_first if c in pop.linkable)
    with world.ctx.db.session(readonly=True) as s:
        attempted = [r.customer_id for r in s.scalars(select(AutolinkOutcome))]
    # Every candidate was attempted exactly once across the two runs.
    assert sorted(attempted) == sorted(pop.candidates)
    assert count(world, Link) == LINKABLE + 1
    assert count(world, ProgressRow) == 0


# -------------------------------------------------------------------------------------- shards


def shard_run(world: World, shard: tuple[int, int] | None, **kwargs: Any) -> RunStatus:
    """What ``linker autolink backfill --shard I/N`` runs: the chunks of the shard here."""
    return BackfillJobs(world.ctx).run_inline(ADMIN, shard=shard, **kwargs)


def test_shards_partition_the_customers(world: World) -> None:
    """Shard processes started one after another (each plans when the others have done
    their part) still attempt every profile exactly once between them."""
    pop = populate(world)
    shards = 3
    per_shard: list[set[str]] = []
    for index in range(shards):
        before = set(column(world, AutolinkOutcome.customer_id))
        status = shard_run(world, (index, shards), chunk_size=2)
        after = set(column(world, AutolinkOutcome.customer_id))
        mine = after - before
        assert all(in_shard(c, (index, shards)) for c in mine)
        assert status.done == status.total == len(mine)
        assert set(status.chunks) <= {"succeeded"}
        per_shard.append(mine)
        # The progress is the integration's (a whole run resumes it) until the last shard.
        assert (count(world, ProgressRow) == 0) == (index == shards - 1)
    assert sum(len(s) for s in per_shard) == len(pop.candidates)
    assert set().union(*per_shard) == set(pop.candidates)
    assert count(world, AutolinkOutcome) == len(pop.candidates)  # one attempt each
    assert count(world, Link) == LINKABLE + 1


def test_a_whole_run_resumes_after_one_shard(world: World) -> None:
    pop = populate(world)
    first = set(column(world, AutolinkOutcome.customer_id))
    shard_run(world, (0, 2))
    mine = set(column(world, AutolinkOutcome.customer_id)) - first
    summary = backfill(world)
    assert summary.resumed > 0  # the shard's profiles left unlinked: done, skipped
    assert {r.customer_id for r in summary.results}.isdisjoint(mine)
    assert count(world, AutolinkOutcome) == len(pop.candidates)
    assert count(world, ProgressRow) == 0


def detailed_lookups(world: World, customers: list[str]) -> dict[str, int]:
    """DETAILED exchanges stored per customer (0 included)."""
    with world.ctx.db.session(readonly=True) as s:
        found = dict(s.execute(select(ExchangeRecord.customer_id, func.count()).where(
            ExchangeRecord.kind == "detailed", ExchangeRecord.customer_id.in_(customers))
            .group_by(ExchangeRecord.customer_id)).all())
    return {c: found.get(c, 0) for c in customers}


@pytest.mark.parametrize("shards", [None, 3])
def test_chunked_runs_heal_each_link_once_wherever_its_profile_falls(
        world: World, shards: int | None) -> None:
    """Chunks of one pending profile each: the linked profiles are in no chunk's range, yet
    the run (or the shards between them) refreshes each of their links once."""
    pop = populate(world)
    backfill(world)
    forget_pulled_data(world, pop.linkable, pop.shop)
    before = detailed_lookups(world, pop.linkable)
    for shard in [None] if shards is None else [(i, shards) for i in range(shards)]:
        shard_run(world, shard, chunk_size=1)
    after = detailed_lookups(world, pop.linkable)
    assert {c: after[c] - before[c] for c in pop.linkable} == {c: 1 for c in pop.linkable}
    assert all(world.pulled(c, pop.shop).fetched_at is not None  # type: ignore[union-attr]
               for c in pop.linkable)


def test_a_chunked_run_with_nothing_pending_still_heals(world: World) -> None:
    pop = populate(world)
    backfill(world)
    unlinked = [c for c in pop.candidates if c not in pop.linkable]
    with world.ctx.db.session() as s:  # an interrupted run did every other profile
        s.add_all(ProgressRow(run_key=run_key([pop.shop]), customer_id=c) for c in unlinked)
    forget_pulled_data(world, pop.linkable[:2], pop.shop)
    status = shard_run(world, None)
    assert (status.total, status.chunks) == (0, {"succeeded": 1})  # the healing chunk
    assert all(world.pulled(c, pop.shop).fetched_at is not None  # type: ignore[union-attr]
               for c in pop.linkable[:2])
    assert count(world, ProgressRow) == 0  # nothing left: the run is complete


def test_a_stopped_shard_counts_only_its_own_profiles(world: World) -> None:
    """Shard 1 runs while shard 0 is stopped after its first batch: shard 0's status counts
    its own batch, not shard 1's progress rows in its chunk's range."""
    populate(world)
    for i in range(300):
        world.add_customer(f"Extra {i}", [f"extra{i}@nowhere.example"])
    cancel = threading.Event()
    other: list[RunStatus] = []

    def shard_one_then_stop(progress: BackfillProgress) -> None:
        if not other:
            side = threading.Thread(
                target=lambda: other.append(shard_run(world, (1, 2), concurrency=4)))
            side.start()
            side.join()
            cancel.set()

    stopped = shard_run(world, (0, 2), concurrency=4, chunk_size=1000,
                        progress=shard_one_then_stop, cancel=cancel)
    assert other[0].done == other[0].total > 0
    assert stopped.chunks == {"aborted": 1}
    assert stopped.done == 2 * 64 < stopped.total  # the batch of 4 * 16 and the next one


def test_shard_helpers() -> None:
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "x/2", "3", "1/0"):
        with pytest.raises(InvalidInput, match="shard"):
            parse_shard(bad)
    ids = [f"c{i}" for i in range(200)]
    buckets = [[c for c in ids if in_shard(c, (i, 4))] for i in range(4)]
    assert sorted(c for b in buckets for c in b) == sorted(ids)
    assert all(buckets)
    assert run_key([3, 1]) == "autolink:1,3"


# ---------------------------------------------------------------------------- refusals


def test_backfill_needs_the_permission(world: World) -> None:
    populate(world)
    for role in (Role.AGENT, Role.DEVELOPER, Role.SUPPORT_LEAD):
        with pytest.raises(PermissionDenied):
            BackfillService(world.ctx).run(Actor("x", role))
    assert world.calls("Shop") == 0


def test_bad_arguments_and_unusable_integrations(world: World) -> None:
    pop = populate(world)
    off = world.add_integration("Off", "shop")
    with pytest.raises(InvalidInput, match="concurrency"):
        backfill(world, concurrency=0)
    with pytest.raises(InvalidInput, match="shard"):
        shard_run(world, (2, 2))
    with pytest.raises(InvalidInput, match="auto-linking off"):
        backfill(world, integration_ids=[pop.shop, off])
    with world.ctx.db.session() as s:
        integration = s.get(Integration, pop.shop)
        assert integration is not None
        integration.autolink_fields = []
    with pytest.raises(InvalidInput, match="no active integration"):
        backfill(world)
    with pytest.raises(InvalidInput, match="no auto-linking field"):
        backfill(world, integration_ids=[pop.shop])


# ------------------------------------------------------------------------- loopback and CLI


@pytest.fixture
def served(world: World) -> Iterator[tuple[World, Population]]:
    """The population with Shop served over a real loopback socket."""
    pop = populate(world)
    world.ctx.client = LookupClient()
    with BackgroundServer(create_app("shop", signing_key=SIGNING_KEY)) as server:
        with world.ctx.db.session() as s:
            integration = s.get(Integration, pop.shop)
            assert integration is not None
            integration.url = server.url
        yield world, pop


def test_backfill_over_loopback(served: tuple[World, Population]) -> None:
    world, _pop = served
    summary = backfill(world, concurrency=8)
    assert summary.counts == expected_counts()
    assert count(world, Link) == LINKABLE + 1


def cli_env(monkeypatch: pytest.MonkeyPatch, world: World, home: Path) -> None:
    settings: Settings = world.ctx.settings
    monkeypatch.setenv("LINKER_HOME", str(home))
    monkeypatch.setenv("LINKER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LINKER_SECRET_KEY", settings.secret_key or "")


def test_cli_dry_run_then_real_run(served: tuple[World, Population],
                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    world, pop = served
    cli_env(monkeypatch, world, tmp_path)

    assert main(["autolink", "backfill", "--dry-run", "--integration", "shop",
                 "--concurrency", "4"]) == 0
    out, err = capsys.readouterr()
    assert re.search(rf"^would link\s+{LINKABLE}$", out, re.MULTILINE), out
    assert "dry run: nothing was linked" in out
    assert f"{len(pop.candidates)}/{len(pop.candidates)} profiles" in err  # the progress bar
    assert count(world, Link) == 1

    assert main(["autolink", "backfill", "--shard", "0/1"]) == 0
    out, _ = capsys.readouterr()
    assert re.search(rf"^linked\s+{LINKABLE}$", out, re.MULTILINE), out
    assert "shard 0/1" in out and "chunk jobs: succeeded 1" in out and "would link" not in out
    assert count(world, Link) == LINKABLE + 1


def test_cli_usage_errors(served: tuple[World, Population], monkeypatch: pytest.MonkeyPatch,
                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world, _ = served
    cli_env(monkeypatch, world, tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["autolink", "backfill", "--shard", "3/3"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["autolink", "backfill", "--concurrency", "0"])
    capsys.readouterr()
    assert main(["autolink", "backfill", "--shard", "0/2", "--dry-run"]) == 2
    assert "leave out --shard" in capsys.readouterr().err
    assert main(["autolink", "backfill", "--integration", "Nope"]) == 1
    _, err = capsys.readouterr()
    assert "no integration named 'Nope'" in err
    assert count(world, AutolinkOutcome) == 0


@pytest.mark.parametrize("how", ["whole", "chunks", "shard"])
def test_status_lists_a_run_going_in_a_process_and_cancel_stops_it(
        world: World, how: str) -> None:
    """Between two batches, another reader sees the run (who, since when, how far) and
    cancels it; the run stops before its next batch and leaves the list."""
    pop = populate(world)
    jobs = BackfillJobs(world.ctx)
    seen: list[LiveRun] = []

    def look_then_cancel(progress: BackfillProgress) -> None:
        if not seen:
            seen.extend(jobs.running(ADMIN))
            assert jobs.cancel(ADMIN, seen[0].run) == 1
            assert jobs.running(ADMIN)[0].cancel_requested

    if how == "whole":
        summary = backfill(world, batch_size=4, progress=look_then_cancel)
        stopped, done = summary.cancelled, summary.done
    else:
        status = shard_run(world, (0, 1) if how == "shard" else None, chunk_size=4,
                           progress=look_then_cancel)
        stopped, done = status.cancelled, status.done
        assert seen[0].run == status.run
    (live,) = seen
    assert live.what == {"whole": "whole run in one process", "chunks": "chunks in one "
                         "process", "shard": "shard 0/1"}[how]
    assert live.integrations == ("Shop",) and live.total == len(pop.candidates)
    assert f"pid {os.getpid()}" in live.holder and not live.cancel_requested
    # a whole run completes the batch launched behind the first; chunks of 4 go one by one
    assert stopped and done == (8 if how == "whole" else 4)
    assert count(world, AutolinkOutcome) == done
    assert jobs.running(ADMIN) == []
    assert jobs.cancel(ADMIN, live.run) == 0  # it has ended
    told = [e.after["processes"] for e in world.audit("backfill.cancel")]  # type: ignore[index]
    assert told == [1, 0]


def test_cli_status_and_cancel_see_a_run_of_another_process(
        served: tuple[World, Population], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    world, _ = served
    cli_env(monkeypatch, world, tmp_path)
    assert main(["autolink", "status"]) == 1
    assert "no backfill is running in a process" in capsys.readouterr().err
    outputs: list[str] = []

    def ask_the_cli(progress: BackfillProgress) -> None:
        if not outputs:
            assert main(["autolink", "status"]) == 0
            outputs.append(capsys.readouterr().out)
            run = re.search(r"^([0-9a-f]{16}) ", outputs[0], re.MULTILINE)
            assert run, outputs[0]
            assert main(["autolink", "cancel", run[1]]) == 0
            outputs.append(capsys.readouterr().out)

    status = shard_run(world, (1, 2), chunk_size=2, progress=ask_the_cli)
    assert "shard 1/2" in outputs[0] and "Shop" in outputs[0] and "running" in outputs[0]
    assert f"0/{status.total}" in outputs[0]
    assert "1 chunk job(s) or process(es) were told to stop" in outputs[1]
    assert status.cancelled and status.done < status.total
    assert main(["autolink", "cancel", status.run]) == 1


@pytest.mark.parametrize("how", ["whole", "chunks", "shard"])
def test_a_live_run_keeps_the_outcome_counts_of_its_last_batch(world: World, how: str
                                                                ) -> None:
    """After each batch the run's row holds the outcome counts so far: another reader sees
    those of the batch before (none before the first batch)."""
    populate(world)
    jobs = BackfillJobs(world.ctx)
    seen: list[LiveRun] = []
    reported: list[dict[str, int]] = []

    def look(progress: BackfillProgress) -> None:
        (live,) = jobs.running(ADMIN)
        seen.append(live)
        reported.append(dict(progress.counts))

    if how == "whole":
        backfill(world, batch_size=4, progress=look)
    else:
        shard_run(world, (0, 1) if how == "shard" else None, chunk_size=4, progress=look)
    assert len(seen) >= 2
    assert seen[0].counts == {} and seen[0].progress().counts == {}
    for live, before in zip(seen[1:], reported, strict=False):
        assert live.counts == before and live.progress().counts == before
    assert sum(reported[0].values()) == 4
    assert jobs.running(ADMIN) == []


def test_cli_status_shows_the_outcomes_of_a_live_run(
        served: tuple[World, Population], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    world, _ = served
    cli_env(monkeypatch, world, tmp_path)
    outputs: list[str] = []
    reported: list[dict[str, int]] = []

    def ask_the_cli(progress: BackfillProgress) -> None:
        if len(reported) == 1:  # the first batch's counts are in the row now
            assert main(["autolink", "status"]) == 0
            outputs.append(capsys.readouterr().out)
        reported.append(dict(progress.counts))

    shard_run(world, (0, 1), chunk_size=4, progress=ask_the_cli)
    shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in reported[0].items() if v)
    assert shown and "outcomes" in outputs[0] and shown in outputs[0], (shown, outputs[0])


def test_print_live_shows_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    started = datetime(2026, 12, 4, 1, 2, 3, tzinfo=UTC)
    runs = [LiveRun("0123456789abcdef", ("Shop",), "1/3", "ops on box (pid 7)", started,
                    started, 40, 120, False, {"linked": 31, "no_match": 9, "error": 0}),
            LiveRun("fedcba9876543210", ("Shop",), "dry run", "ops on box (pid 8)", started,
                    started, 0, 120, True)]
    autolink_cmd.print_live(runs)
    out = capsys.readouterr().out
    (first,) = [line for line in out.splitlines() if line.startswith("0123456789abcdef")]
    assert "40/120" in first and "linked 31, no match 9" in first and "error" not in first
    (second,) = [line for line in out.splitlines() if line.startswith("fedcba9876543210")]
    assert " - " in second and "stopping" in second


KILLED_HOLDER = """
import sys, threading
from datetime import UTC, datetime
from linker.services.backfill_live import Registered
from linker.store.database import Database

db = Database(sys.argv[1])
with Registered(db, lambda: datetime.now(UTC), sys.argv[2], ["Shop"], "1/2",
                "doomed (pid killed)", 10, None) as live:
    live.report(3, 10, {"linked": 2, "no_match": 1})
    print("registered", flush=True)
    threading.Event().wait()  # until killed
"""


def test_the_row_of_a_killed_process_is_ignored_then_deleted(world: World) -> None:
    """A separate process registers a run and is killed (SIGKILL: no clean-up); once its
    heartbeat is older than the lease time-to-live, status ignores the row and the next
    registration deletes it (the clock is moved on instead of waited out)."""
    import subprocess
    import sys
    import time
    from datetime import UTC, datetime

    from linker.services.backfill_live import Registered, live_runs
    from linker.store.models import BackfillRun

    db = world.ctx.db
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen([sys.executable, "-c", KILLED_HOLDER,
                                world.ctx.settings.database_url, "0000000000dead01"],
                               cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        seen: list[LiveRun] = []
        while not (seen and seen[0].counts):  # registered, and its batch reported
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the process never reported its run"
            threading.Event().wait(0.05)
            seen = live_runs(db, datetime.now(UTC))
        (live,) = seen
        assert live.run == "0000000000dead01" and live.what == "shard 1/2"
        assert live.done == 3 and live.counts == {"linked": 2, "no_match": 1}
    finally:
        process.kill()  # SIGKILL
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = datetime.now(UTC)
    assert [r.run for r in live_runs(db, killed_at)] == ["0000000000dead01"]  # not stale yet
    later = killed_at + timedelta(seconds=leases.LEASE_TTL_S + 1)
    assert live_runs(db, later) == []  # status ignores it
    assert count(world, BackfillRun) == 1  # ignored, not deleted yet
    with Registered(db, lambda: later, "0000000000a11ve0", ["Shop"], "", "next (pid 1)", 5,
                    None):
        assert count(world, BackfillRun, BackfillRun.run == "0000000000dead01") == 0
        assert [r.run for r in live_runs(db, later)] == ["0000000000a11ve0"]
    assert count(world, BackfillRun) == 0


def test_system_actor_may_backfill(world: World) -> None:
    populate(world)
    assert BackfillService(world.ctx).run(SYSTEM).counts["linked"] == LINKABLE


def test_cli_ctrl_c_stops_after_the_batches_in_flight_and_resumes(served: tuple[World, Population],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    world, pop = served
    extra = [world.add_customer(f"Extra {i}", [f"extra{i}@nowhere.example"])
             for i in range(200)]
    total = len(pop.candidates) + len(extra)
    cli_env(monkeypatch, world, tmp_path)
    draw = autolink_cmd.ProgressBar.__call__
    pressed: list[int] = []

    def draw_then_press_ctrl_c(self: autolink_cmd.ProgressBar, p: BackfillProgress) -> None:
        draw(self, p)
        if not pressed:
            pressed.append(p.done)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(autolink_cmd.ProgressBar, "__call__", draw_then_press_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    # One request in flight: batches of 64 profiles; Ctrl-C after the first one, so the
    # second (launched behind it) completes and no third starts.
    assert main(["autolink", "backfill", "--concurrency", "1"]) == 0
    out, err = capsys.readouterr()
    assert pressed == [64]
    assert "stopping after the batches in flight" in err
    assert f"128 of {total} profiles" in out
    assert "run the same command again to resume from profile 129" in out
    assert count(world, ProgressRow) == 128
    assert signal.getsignal(signal.SIGINT) is before  # the handler was restored

    monkeypatch.setattr(autolink_cmd.ProgressBar, "__call__", draw)
    assert main(["autolink", "backfill"]) == 0
    out, _ = capsys.readouterr()
    assert "done by an earlier interrupted run were skipped" in out
    assert "stopped early" not in out
    assert count(world, AutolinkOutcome) == total and count(world, ProgressRow) == 0


def test_second_ctrl_c_aborts_at_once() -> None:
    import io

    cancel = threading.Event()
    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt), autolink_cmd.stop_on_ctrl_c(cancel, stream):
        os.kill(os.getpid(), signal.SIGINT)
        assert cancel.is_set()
        os.kill(os.getpid(), signal.SIGINT)
    assert "Ctrl-C again to abort now" in stream.getvalue()


def test_a_dead_holder_on_this_host_does_not_block_until_expiry(world: World) -> None:
    import socket
    import subprocess
    import sys

    shop = populate(world).shop
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = f"root on {socket.gethostname()} (pid {gone.stdout.strip()})"
    assert leases.holder_is_dead(dead)
    assert not leases.holder_is_dead(f"root on {socket.gethostname()} (pid {os.getpid()})")
    assert not leases.holder_is_dead("root on another-host (pid 1)")
    leases.acquire(world.ctx.db, [(shop, "Shop")], dead, world.ctx.now())
    assert backfill(world).counts["linked"] == LINKABLE  # taken over at once


def test_migration_0015_is_reversible(db: Database) -> None:
    def present() -> bool:
        return "counts" in {c["name"] for c in inspect(db.engine).get_columns("backfill_runs")}

    assert present()
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0014")
    assert not present()
    db.upgrade()
    assert present()


def test_migration_0014_is_reversible(db: Database) -> None:
    def present() -> bool:
        return "backfill_runs" in inspect(db.engine).get_table_names()

    assert present()
    with db.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0013")
    assert not present()
    db.upgrade()
    assert present()
