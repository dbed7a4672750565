"""Audit log page: support lead and admin see every event newest first with before → after,
filter it, page through it (keyset) and export it; others cannot reach it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from streamlit.proto.Block_pb2 import Block as BlockProto
from streamlit.testing.v1 import AppTest

from linker.services.facade import Services
from linker.store.models import AuditEvent
from tests.apptest.conftest import make_integration, table, texts

PAGE = "audit.py"


@pytest.fixture
def seeded(services: Services) -> dict[str, int]:
    shop = make_integration(services, "Shop", "http://127.0.0.1:8401/")  # integration.created
    now = datetime.now(UTC)
    with services.ctx.db.session() as s:
        for n in range(60):
            s.add(AuditEvent(at=now - timedelta(minutes=120 - n), actor=f"agent{n % 2}",
                             role="agent", action="link.created", entity_type="customer",
                             entity_id=f"c{n:03}",
                             after={"integration_id": shop.id, "integration": "Shop",
                                    "external_customer_id": f"=x{n}"}))
        s.add(AuditEvent(at=now - timedelta(days=3), actor="root", role="admin",
                         action="integration.updated", entity_type="integration",
                         entity_id=str(shop.id), before={"timeout_s": 5.0},
                         after={"timeout_s": 2.5}))
    return {"shop": shop.id}


@pytest.mark.parametrize("role", ["admin", "support_lead"])
def test_allowed_roles_see_the_newest_events(app_as: Callable[..., AppTest],
                                             seeded: dict[str, int], role: str) -> None:
    at = app_as(role, page=PAGE)
    assert not at.exception, at.exception
    assert "Audit log" in texts(at.title)
    rows = table(at, "Time", "Actor", "Action", "Target", "Before → after")
    assert len(rows) == 50
    assert rows["Action"].iloc[0] == "integration.created"  # made last, by the system
    assert rows["Actor"].iloc[0] == "system"
    assert rows["Target"].iloc[1] == "customer c059"
    assert "external_customer_id: =x59" in rows["Before → after"].iloc[1]


@pytest.mark.parametrize("role", ["developer", "agent"])
def test_other_roles_cannot_reach_the_page(app_as: Callable[..., AppTest], role: str) -> None:
    at = app_as(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(f"../pages/{PAGE}")


def test_older_pages_and_back(app_as: Callable[..., AppTest], seeded: dict[str, int]) -> None:
    at = app_as("support_lead", page=PAGE)
    at.button(key="audit.older").click().run()
    rows = table(at, "Time", "Actor", "Action", "Target")
    assert len(rows) == 12 and rows["Target"].iloc[-1] == f"integration {seeded['shop']}"
    assert at.button(key="audit.older").disabled
    at.button(key="audit.newest").click().run()
    assert len(table(at, "Time", "Actor", "Action", "Target")) == 50


def test_filters(app_as: Callable[..., AppTest], seeded: dict[str, int]) -> None:
    at = app_as("admin", page=PAGE)
    at.selectbox(key="audit.actor").set_value("root").run()
    rows = table(at, "Time", "Actor", "Action", "Target", "Before → after")
    assert list(rows["Action"]) == ["integration.updated"]
    assert rows["Before → after"].iloc[0] == "timeout_s: 5.0 → 2.5"
    at.selectbox(key="audit.window").set_value("24h").run()
    assert any("No audit event matches" in i for i in texts(at.info))
    at.selectbox(key="audit.actor").set_value("").run()
    at.text_input(key="audit.customer").input("c007").run()
    rows = table(at, "Time", "Actor", "Action", "Target")
    assert list(rows["Target"]) == ["customer c007"]
    at.text_input(key="audit.customer").input("").run()
    at.selectbox(key="audit.window").set_value("all").run()
    at.selectbox(key="audit.integration").set_value(seeded["shop"]).run()
    at.selectbox(key="audit.action").set_value("integration.updated").run()
    assert list(table(at, "Time", "Action")["Action"]) == ["integration.updated"]
    assert at.get("download_button")



def keyed_block(node: Any, key: str) -> Any:
    """The container whose key is ``key`` (its proto id ends with ``-<key>``), depth first."""
    for child in getattr(node, "children", {}).values():
        if type(child).__name__ == "Block" and str(child.proto.id).endswith(f"-{key}"):
            return child
        found = keyed_block(child, key)
        if found is not None:
            return found
    return None


@pytest.mark.parametrize(("page", "bar", "controls"), [
    ("audit.py", "audit.filters",
     {"audit.actor", "audit.action", "audit.integration", "audit.customer", "audit.window"}),
    ("coverage.py", "coverage.filters", {"coverage.integration", "coverage.reason"}),
    ("autolinking.py", "outcomes.filters",
     {"outcomes.integration", "outcomes.outcome", "outcomes.window"}),
])
def test_list_pages_show_their_filters_in_one_shared_bar(
        app_as: Callable[..., AppTest], seeded: dict[str, int], page: str, bar: str,
        controls: set[str]) -> None:
    at = app_as("admin", page=page)
    assert not at.exception, at.exception
    block = keyed_block(at.main, bar)
    assert block is not None, f"no filter bar {bar}"
    assert block.proto.flex_container.direction == BlockProto.FlexContainer.Direction.HORIZONTAL
    assert {w.key for w in (*block.selectbox, *block.text_input)} == controls
