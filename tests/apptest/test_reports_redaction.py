"""No configured secret appears on the Health, Coverage or Audit log page, nor in their CSV
exports, after the integration holding them was created and changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamlit.testing.v1 import AppTest

from linker.core.permissions import SYSTEM
from linker.services.audit_log import AuditFilter
from linker.services.facade import Services
from linker.services.integrations import IntegrationChanges
from tests.apptest.conftest import make_integration

PASSWORD = "pw-4f9c1e-never-shown"
SIGNING_KEY = "sk-77aa02-never-shown"
HEADER = "hv-31b8d0-never-shown"


def everything_shown(at: AppTest) -> str:
    """Every value and label of every element of the last run, as one string."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        for attr in ("value", "label", "body", "help", "placeholder"):
            value = getattr(node, attr, None)
            if value is not None and not callable(value):
                parts.append(str(value))
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def test_no_secret_on_the_pages_or_in_exports(app_as: Callable[..., AppTest],
                                              services: Services) -> None:
    shop = make_integration(services, "Shop", "http://127.0.0.1:8401/", username="linker",
                            password=PASSWORD, signing_key=SIGNING_KEY,
                            headers=({"name": "X-Api-Key", "value": HEADER, "secret": True},))
    services.integrations.update(SYSTEM, shop.id, IntegrationChanges(password=PASSWORD + "2",
                                                                     signing_key=""))
    at = app_as("admin")
    for page in ("health.py", "coverage.py", "audit.py"):
        at.switch_page(f"../pages/{page}").run()
        assert not at.exception, (page, at.exception)
        shown = everything_shown(at)
        assert "integration.updated" in shown or page != "audit.py"
        for secret in (PASSWORD, SIGNING_KEY, HEADER):
            assert secret not in shown, (page, secret)
    exports = (services.audit_log.export_csv(SYSTEM, AuditFilter())
               + services.coverage.export_csv(SYSTEM, shop.id))
    assert "integration.created" in exports
    for secret in (PASSWORD, SIGNING_KEY, HEADER):
        assert secret not in exports
