"""The debugger's workflows against the reference adaptors: every step a stored exchange with
trigger ``debugger``, the decision and its reason, the rows, the DETAILED preview, and nothing
linked."""

from __future__ import annotations

import pytest

from linker.core.autolink import Outcome
from linker.core.permissions import Actor, Role
from linker.services.debugger import DebuggerService
from linker.services.errors import InvalidInput, PermissionDenied
from linker.store.models import Link, Suppression
from tests.integration.world import World, record, request_query, unique_record
from tests.integration.world import dataset as custom_dataset

DEV = Actor("dana", Role.DEVELOPER)


def debugger(world: World) -> DebuggerService:
    return DebuggerService(world.ctx)


def no_links(world: World) -> bool:
    with world.ctx.db.session(readonly=True) as s:
        return s.query(Link).count() == 0


def test_autolink_workflow_shows_the_decision_and_what_the_profile_would_get(
        world: World) -> None:
    person = unique_record(with_transactions=True)
    iid = world.add_integration("Shop", "shop", autolink_fields=("email",))
    cid = world.add_customer("Someone", [person.emails[0]])
    run = debugger(world).autolink(DEV, cid, iid)
    assert run.decision is not None and run.decision.outcome is Outcome.LINKED
    assert person.external_customer_id in run.decision.reason
    assert [step.title for step in run.steps] == [
        "Auto-link lookup", f"Detailed lookup of {person.external_customer_id}"]
    assert all(step.exchange is not None and step.exchange.trigger.value == "debugger"
               for step in run.steps)
    assert run.detailed is not None
    assert run.linkable_external_id == person.external_customer_id
    assert len(run.detailed.transactions) == len(person.transactions)
    assert [e.trigger for e in world.exchanges()] == ["debugger", "debugger"]
    assert no_links(world)


def test_autolink_workflow_without_fields_sends_no_request(world: World) -> None:
    person = unique_record()
    iid = world.add_integration("Shop", "shop")
    cid = world.add_customer("Someone", [person.emails[0]])
    assert debugger(world).autolink_fields(DEV, iid) == ()
    run = debugger(world).autolink(DEV, cid, iid)
    assert len(run.steps) == 1 and run.steps[0].exchange is None
    assert run.steps[0].note.startswith("No request would be sent")
    assert run.decision is not None and run.decision.outcome is Outcome.SKIPPED
    assert world.calls("Shop") == 0 and world.exchanges() == []


def test_autolink_workflow_names_the_rule_that_failed(world: World) -> None:
    twins = custom_dataset(record("t-1", emails=["twin@example.com"]),
                           record("t-2", emails=["twin@example.com"]))
    iid = world.add_integration("Twins", twins, autolink_fields=("email",))
    cid = world.add_customer("Twin", ["twin@example.com"])
    run = debugger(world).autolink(DEV, cid, iid)
    assert run.decision is not None and run.decision.outcome is Outcome.AMBIGUOUS
    assert "2 results came back" in run.decision.reason
    assert run.detailed is None and "would not link" in run.detailed_problem
    assert len(run.steps) == 1


def test_a_suppressed_pair_is_still_tried_but_said_to_be_suppressed(world: World) -> None:
    person = unique_record()
    iid = world.add_integration("Shop", "shop", autolink_fields=("email",))
    cid = world.add_customer("Someone", [person.emails[0]])
    with world.ctx.db.session() as s:
        s.add(Suppression(customer_id=cid, integration_id=iid, created_by="alice"))
    run = debugger(world).autolink(DEV, cid, iid)
    assert run.decision is not None and run.decision.outcome is Outcome.SUPPRESSED
    assert "clear the suppression" in run.decision.reason


def test_a_failing_adaptor_is_a_step_with_its_error_never_an_exception(world: World) -> None:
    person = unique_record()
    iid = world.add_integration("Broken", "shop", faults=["status:503"],
                                autolink_fields=("email",))
    cid = world.add_customer("Someone", [person.emails[0]])
    run = debugger(world).autolink(DEV, cid, iid)
    assert run.decision is not None and run.decision.outcome is Outcome.ERROR
    exchange = run.steps[0].exchange
    assert exchange is not None and exchange.error is not None
    assert exchange.response is not None and exchange.response.status == 503


def test_basic_workflow_shows_rows_then_the_detailed_lookup_of_a_chosen_row(
        world: World) -> None:
    person = unique_record()
    iid = world.add_integration("Shop", "shop")
    cid = world.add_customer("Someone", [person.emails[0]])
    fields = debugger(world).search_fields(DEV, iid, cid)
    assert ("email", "Email", person.emails[0]) in fields
    run = debugger(world).basic(DEV, cid, iid, {"email": person.emails[0]})
    assert [r.external_customer_id for r in run.rows] == [person.external_customer_id]
    assert run.rows[0].values["name"] == person.name
    assert dict(run.columns)["name"] == "Name"
    assert len(run.steps) == 2 and run.detailed is not None
    assert request_query(world.exchanges()[0]) == {"email": person.emails[0], "id": cid}
    assert request_query(world.exchanges()[1])["externalCustomerId"] == (
        person.external_customer_id)
    assert no_links(world)


def test_basic_workflow_with_several_rows_waits_for_a_choice(world: World) -> None:
    twins = custom_dataset(record("t-1", emails=["twin@example.com"]),
                           record("t-2", emails=["twin@example.com"]))
    iid = world.add_integration("Twins", twins)
    cid = world.add_customer("Twin", ["twin@example.com"])
    run = debugger(world).basic(DEV, cid, iid, {"email": "twin@example.com"})
    assert len(run.rows) == 2 and run.detailed is None
    assert run.detailed_problem == "Pick a row to send its DETAILED lookup."
    chosen = debugger(world).basic(DEV, cid, iid, {"email": "twin@example.com"},
                                   detail_external_id="t-2")
    assert chosen.detailed is not None and chosen.detailed.external_customer_id == "t-2"


def test_basic_workflow_needs_a_filled_field(world: World) -> None:
    iid = world.add_integration("Shop", "shop")
    cid = world.add_customer("Someone", ["x@example.com"])
    with pytest.raises(InvalidInput) as error:
        debugger(world).basic(DEV, cid, iid, {"email": "  "})
    assert "fields" in error.value.fields


def test_find_profile_by_email_then_phone(world: World) -> None:
    by_email = world.add_customer("Mail", ["mail@example.com"])
    by_phone = world.add_customer("Phone", phones=[("+14155550100", "MOBILE")])
    service = debugger(world)
    found = service.find_profile(DEV, email="mail@example.com", phone="+14155550100")
    assert found is not None and found.id == by_email
    found = service.find_profile(DEV, email="nobody@example.com", phone="+14155550100")
    assert found is not None and found.id == by_phone
    assert service.find_profile(DEV, email="nobody@example.com") is None


@pytest.mark.parametrize("role", [Role.AGENT, Role.SUPPORT_LEAD])
def test_roles_without_test_permission_cannot_use_it(world: World, role: Role) -> None:
    iid = world.add_integration("Shop", "shop", autolink_fields=("email",))
    cid = world.add_customer("Someone", ["x@example.com"])
    actor = Actor("someone", role)
    service = debugger(world)
    for call in (lambda: service.autolink(actor, cid, iid),
                 lambda: service.basic(actor, cid, iid, {"email": "x@example.com"}),
                 lambda: service.find_profile(actor, email="x@example.com"),
                 lambda: service.search_fields(actor, iid, cid)):
        with pytest.raises(PermissionDenied):
            call()
    assert world.exchanges() == []
