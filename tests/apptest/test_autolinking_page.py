"""Auto-linking page: admin toggles auto-linking, reads outcomes, runs a backfill (dry run
first) against the real reference adaptor; every other role cannot reach the page."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from linker.adaptor import BackgroundServer, create_app, load_dataset, parse_fault
from linker.core.permissions import SYSTEM
from linker.services.backfill import BackfillService
from linker.services.facade import Services
from linker.store.models import BackfillRun
from tests.apptest.conftest import (
    ShopPerson,
    make_integration,
    shop_person,
    table,
    texts,
)

PAGE = "autolinking.py"
DEADLINE_S = 30.0


def run_until(at: AppTest, done: Callable[[AppTest], bool], what: str) -> AppTest:
    """Re-run the app until ``done(at)`` holds (the backfill runs in a thread), or fail."""
    deadline = time.monotonic() + DEADLINE_S
    while not done(at):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
        at.run()
        assert not at.exception, at.exception
    return at


def import_people(services: Services, *people: tuple[str, str]) -> None:
    """Profiles created without auto-linking (a CSV import), as a backfill finds them."""
    rows = "\n".join(f"{name},{email},," for name, email in people)
    report = services.customers.import_csv(SYSTEM, f"name,email,phone,phone_type\n{rows}\n")
    assert report.ok, report.rejected


@pytest.fixture
def slow_shop_url() -> Iterator[str]:
    """A shop adaptor answering after 1.5 s, so a backfill is still running when looked at."""
    with BackgroundServer(create_app("shop", faults=[parse_fault("latency:1500")])) as server:
        yield server.url


# -- access -----------------------------------------------------------------------------------


def test_admin_renders_the_page(app_as: Callable[..., AppTest], services: Services,
                                shop_url: str) -> None:
    make_integration(services, "Shop", shop_url, autolink_enabled=True,
                     autolink_fields=("email",))
    make_integration(services, "Travel", shop_url)
    at = app_as("admin", page=PAGE)
    assert not at.exception
    assert "Auto-linking" in texts(at.title)
    captions = texts(at.caption)
    assert any(c.startswith("When a profile is created") and "one of its emails" in c
               and "MOBILE" not in c for c in captions)
    assert "Auto-linking to Travel is off: profiles are linked to it only by hand." in captions
    assert [t.value for t in at.toggle] == [True, False]


@pytest.mark.parametrize("role", ["developer", "agent", "support_lead"])
def test_other_roles_cannot_reach_the_page(app_as: Callable[..., AppTest], role: str) -> None:
    at = app_as(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(f"../pages/{PAGE}")


# -- toggles ------------------------------------------------------------------------------------


def test_admin_toggles_auto_linking_and_its_fields(app_as: Callable[..., AppTest],
                                                   services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url)
    at = app_as("admin", page=PAGE)
    at.toggle(key=f"autolink.enabled.{view.id}").set_value(True).run()
    assert not at.exception, at.exception
    assert any(e.startswith("Auto-linking of Shop was not changed: choose email, mobile phone")
               for e in texts(at.error)), texts(at.error)
    assert not services.integrations.get(SYSTEM, view.id).autolink_enabled
    assert at.toggle(key=f"autolink.enabled.{view.id}").value is False
    at.multiselect(key=f"autolink.fields.{view.id}").set_value(["email", "mobile"]).run()
    assert "Auto-linking to Shop is off (Email, Mobile phone)." in texts(at.success)
    at.toggle(key=f"autolink.enabled.{view.id}").set_value(True).run()
    assert "Auto-linking to Shop is on (Email, Mobile phone)." in texts(at.success)
    stored = services.integrations.get(SYSTEM, view.id)
    assert stored.autolink_enabled and stored.autolink_fields == ("email", "mobile")
    assert any("MOBILE phones" in c for c in texts(at.caption))
    at.toggle(key=f"autolink.enabled.{view.id}").set_value(False).run()
    assert not services.integrations.get(SYSTEM, view.id).autolink_enabled
    audit = services.reports.audit_log(SYSTEM, action="integration.autolink_changed")
    assert [e.actor for e in audit] == ["admin-user"] * 3


# -- outcomes -----------------------------------------------------------------------------------


def test_recent_outcomes_filters_chart_and_exchange(app_as: Callable[..., AppTest],
                                                    services: Services, shop_url: str) -> None:
    make_integration(services, "Shop", shop_url, autolink_enabled=True,
                     autolink_fields=("email",))
    unique, duplicate = shop_person("unique"), shop_person("duplicate")
    services.customers.create(SYSTEM, unique.name, [unique.email])
    services.customers.create(SYSTEM, duplicate.name, [duplicate.email])
    at = app_as("admin", page=PAGE)
    rows = table(at, "Outcome", "Reason")
    assert sorted(rows["Outcome"]) == ["ambiguous", "linked"]
    assert all(isinstance(x, int | float) and x > 0 for x in rows["Exchange"])
    assert any(unique.name in c for c in rows["Customer"])
    chart = next(e for e in at.main if getattr(e, "type", "") == "plotly_chart")
    figure = json.loads(chart.proto.spec)
    bars = dict(zip(figure["data"][0]["x"], figure["data"][0]["y"], strict=True))
    assert bars["linked"] == 1 and bars["ambiguous"] == 1 and bars["conflict"] == 0
    at.selectbox(key="outcomes.outcome").set_value("ambiguous").run()
    rows = table(at, "Outcome", "Reason")
    assert list(rows["Outcome"]) == ["ambiguous"]
    assert "2 results came back" in rows["Reason"][0]
    at.selectbox(key="outcomes.exchange").set_value(int(rows["Exchange"][0])).run()
    assert not at.exception, at.exception
    assert any(m.startswith(f"**Exchange {int(rows['Exchange'][0])}**")
               for m in texts(at.markdown))


# -- backfill -----------------------------------------------------------------------------------


def test_backfill_dry_run_then_run(app_as: Callable[..., AppTest], services: Services,
                                   shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url, autolink_enabled=True,
                            autolink_fields=("email",))
    unique, duplicate = shop_person("unique"), shop_person("duplicate")
    import_people(services, (unique.name, unique.email), (duplicate.name, duplicate.email),
                  ("Nobody Known", "nobody.known@nowhere.example"))
    at = app_as("admin", page=PAGE)
    assert at.multiselect(key="backfill.integrations").value == [view.id]
    assert at.button(key="backfill.run").disabled  # dry run first
    at.button(key="backfill.dry_run").click().run()
    run_until(at, lambda a: any("Dry run of Shop" in m for m in texts(a.markdown)),
              "the dry run summary")
    summary = next(m for m in texts(at.markdown) if "Dry run of Shop" in m)
    assert "would link **1**, ambiguous **1**, conflicting **0**, no match 1" in summary
    assert services.reports.coverage(SYSTEM).linked == 0  # a dry run links nothing
    assert not at.button(key="backfill.run").disabled
    at.button(key="backfill.run").click().run()
    run_until(at, lambda a: any(s.startswith("Backfill finished") for s in texts(a.success)),
              "the backfill summary")
    assert any("linked **1** of 3 attempt(s)" in m for m in texts(at.markdown))
    assert services.reports.coverage(SYSTEM).linked == 1
    listed = table(at, "External id", "Reason")  # the run's own per-profile table
    assert sorted(listed["Outcome"]) == ["ambiguous", "linked", "no match"]
    rows = table(at, "Outcome", "Reason")  # the recent outcomes now show the backfill's
    assert sorted(rows["Outcome"]) == ["ambiguous", "linked", "no match"]


def test_backfill_shows_progress_and_can_be_cancelled(
        app_as: Callable[..., AppTest], services: Services, slow_shop_url: str) -> None:
    make_integration(services, "Slow shop", slow_shop_url, autolink_enabled=True,
                     autolink_fields=("email",))
    unique = shop_person("unique")
    import_people(services, (unique.name, unique.email))
    at = app_as("admin", page=PAGE)
    at.button(key="backfill.dry_run").click().run()
    assert not at.exception, at.exception
    assert len(at.progress) == 1
    assert "Dry run started by admin-user" in at.progress[0].proto.text
    at.button(key="backfill.cancel").click().run()
    assert not at.exception, at.exception
    assert any("Cancelling" in c for c in texts(at.caption)) or any(
        "Dry run of Slow shop" in m for m in texts(at.markdown))
    run_until(at, lambda a: not a.progress, "the dry run to stop")



def test_a_backfill_of_another_process_is_listed_and_can_be_cancelled(
        app_as: Callable[..., AppTest], services: Services, shop_url: str) -> None:
    make_integration(services, "Shop", shop_url, autolink_enabled=True,
                     autolink_fields=("email",))
    now = services.ctx.now()
    with services.ctx.db.session() as s:  # what `linker autolink backfill --shard 1/3` writes
        s.add(BackfillRun(run="0123456789abcdef", integrations="Shop", part="1/3",
                          holder="ops on box (pid 7)", started_at=now, heartbeat_at=now,
                          done=40, total=120, counts={"linked": 31, "no_match": 9}))
    at = app_as("admin", page=PAGE)
    assert not at.exception, at.exception
    assert any(c.startswith("Running elsewhere: shard 1/3 of Shop, by ops on box (pid 7)")
               and c.endswith("40 of 120 profiles, 31 linked so far") for c in texts(at.caption))
    at.button(key="backfill.cancel_live.0123456789abcdef").click().run()
    assert not at.exception, at.exception
    (live,) = services.backfill_jobs.running(SYSTEM)
    assert live.cancel_requested
    assert any("(stopping after its batch)" in c for c in texts(at.caption))


def second_unique_person() -> ShopPerson:
    """A shop person other than ``shop_person("unique")`` whose email finds only them."""
    dataset = load_dataset("shop")
    first = shop_person("unique")
    duplicates = dataset.duplicate_emails()
    for record in dataset.records:
        email = record.emails[0] if record.emails else ""
        if (email and email != first.email and email not in duplicates
                and len(dataset.search(emails=[email])) == 1):
            return ShopPerson(record.name, email, record.external_customer_id)
    raise AssertionError("the shop dataset has a single unique person")


def test_backfill_dry_run_lists_each_profile(app_as: Callable[..., AppTest],
                                             services: Services, shop_url: str) -> None:
    view = make_integration(services, "Shop", shop_url, autolink_enabled=True,
                            autolink_fields=("email",))
    held, linkable, duplicate = (shop_person("unique"), second_unique_person(),
                                 shop_person("duplicate"))
    import_people(services, ("Holder", "holder@nowhere.example"), ("Taken", held.email),
                  ("Linkable", linkable.email), ("Twin", duplicate.email),
                  ("Nobody Known", "nobody.known@nowhere.example"))
    # Holder is linked by hand to the record whose email Taken has: a conflict. (Taken exists
    # first, so the refresh after the link cannot copy that email onto Holder.)
    [holder] = services.customers.find(SYSTEM, name="Holder")
    services.linking.link(SYSTEM, holder.id, view.id, held.external_id)
    at = app_as("admin", page=PAGE)
    at.button(key="backfill.dry_run").click().run()
    run_until(at, lambda a: any("Dry run of Shop" in m for m in texts(a.markdown)),
              "the dry run summary")
    summary = next(m for m in texts(at.markdown) if "Dry run of Shop" in m)
    assert "would link **1**, ambiguous **1**, conflicting **1**, no match 1" in summary
    assert any(m.startswith("**Per profile**") for m in texts(at.markdown))
    rows = table(at, "External id", "Reason")
    by_name = {customer.split(" (")[0]: row for customer, row in
               zip(rows["Customer"], rows.to_dict("records"), strict=True)}
    assert set(by_name) == {"Linkable", "Twin", "Nobody Known", "Taken"}
    assert by_name["Linkable"]["Outcome"] == "would link"
    assert by_name["Linkable"]["External id"] == linkable.external_id
    assert f"record {linkable.external_id}" in by_name["Linkable"]["Reason"]
    assert by_name["Taken"]["Outcome"] == "conflict"
    assert by_name["Taken"]["External id"] == held.external_id
    assert f"already linked to profile {holder.id}" in by_name["Taken"]["Reason"]
    assert by_name["Twin"]["Outcome"] == "ambiguous"
    assert "2 results came back" in by_name["Twin"]["Reason"]
    assert by_name["Nobody Known"]["Outcome"] == "no match"
    assert all(row["Integration"] == "Shop" and row["Exchange"] > 0
               for row in by_name.values())
    assert services.reports.coverage(SYSTEM).linked == 1  # only Holder's manual link

    at.selectbox(key="backfill.results.outcome").set_value("conflict").run()
    assert not at.exception, at.exception
    rows = table(at, "External id", "Reason")
    assert list(rows["Customer"]) == [by_name["Taken"]["Customer"]]
    assert list(rows["Outcome"]) == ["conflict"]
    assert any(c.startswith("1 of the 4 listed attempt(s) shown") for c in texts(at.caption))


def test_backfill_progress_names_the_step_before_the_first_batch(
        app_as: Callable[..., AppTest], services: Services, shop_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While the run finds its profiles the bar says so, with the time it has taken; once they
    are known (the first batch still running) it says 0 of N."""
    make_integration(services, "Shop", shop_url, autolink_enabled=True,
                     autolink_fields=("email",))
    unique = shop_person("unique")
    import_people(services, (unique.name, unique.email))
    finding, first_batch = hold(monkeypatch, "_pending"), hold(monkeypatch, "_plan")
    at = app_as("admin", page=PAGE)
    at.button(key="backfill.dry_run").click().run()
    try:
        run_until(at, lambda a: finding.reached.is_set()
                  and "finding profiles to try" in bar_text(a), "the finding step")
        assert re.search(r"Dry run started by admin-user .*: finding profiles to try… \d+ s$",
                         bar_text(at)), bar_text(at)
        finding.release.set()
        run_until(at, lambda a: first_batch.reached.is_set()
                  and ": 0 of 1 profiles" in bar_text(a), "0 of 1 profiles")
    finally:
        finding.release.set()
        first_batch.release.set()
    run_until(at, lambda a: any("Dry run of Shop" in m for m in texts(a.markdown)),
              "the dry run summary")


@dataclass
class Held:
    """A service step held until the test releases it."""

    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def hold(monkeypatch: pytest.MonkeyPatch, method: str) -> Held:
    """Hold ``BackfillService.<method>`` (the run's thread) until released."""
    held, original = Held(), getattr(BackfillService, method)

    def waiting(*args: Any) -> Any:
        held.reached.set()
        held.release.wait(DEADLINE_S)
        return original(*args)

    monkeypatch.setattr(BackfillService, method, waiting)
    return held


def bar_text(at: AppTest) -> str:
    """The progress bar's text ("" when there is none)."""
    return str(at.progress[0].proto.text) if at.progress else ""
