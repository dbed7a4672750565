"""Shared AppTest fixtures: a seeded database per test, caches cleared, signed-in apps.

- ``linker_env``: a fresh SQLite database and secret key in ``tmp_path``, given to the app
  through LINKER_HOME / LINKER_DATABASE_URL / LINKER_SECRET_KEY (set with monkeypatch before
  any app run); LINKER_DEV_ROLE and LINKER_ENV are removed.
- ``services``: ``Services`` on that database, for seeding and for checking what pages did.
- ``shop_url``: the reference shop adaptor served over loopback (one per test session).
- ``app_as(role)``: an AppTest of ``dashboard/app.py`` signed in as ``role`` (session keys
  ``auth_username`` / ``auth_role``), already run once.
- ``make_integration(services, name, url, **settings)``: create an integration as the system.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.present import WORD_JOINER
from linker.adaptor import BackgroundServer, create_app, load_dataset
from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.services.facade import Services
from linker.services.integrations import AttributeSpec, IntegrationSpec, IntegrationView
from linker.store.secretbox import generate_key

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")
TIMEOUT_S = 30

ROLES = ("admin", "developer", "agent", "support_lead")


@pytest.fixture(autouse=True)
def clear_streamlit_caches() -> Iterator[None]:
    """Streamlit caches are process-global: start and end every test with empty ones."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def linker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A new database for this test, configured through the environment the app reads."""
    monkeypatch.setenv("LINKER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LINKER_DATABASE_URL", f"sqlite:///{tmp_path / 'linker.db'}")
    monkeypatch.setenv("LINKER_SECRET_KEY", generate_key())
    monkeypatch.delenv("LINKER_DEV_ROLE", raising=False)
    monkeypatch.delenv("LINKER_ENV", raising=False)
    return Settings.from_env()


@pytest.fixture
def services(linker_env: Settings) -> Iterator[Services]:
    """Services on the test database (migrated), for seeding and assertions."""
    svc = Services.from_settings(linker_env)
    yield svc
    svc.ctx.db.dispose()


@pytest.fixture(scope="session")
def shop_url() -> Iterator[str]:
    """URL of the reference shop adaptor on loopback (no signing key, no Basic auth)."""
    with BackgroundServer(create_app("shop")) as server:
        yield server.url


def new_app() -> AppTest:
    """An AppTest of the entry point with a generous timeout (pages do real work)."""
    return AppTest.from_file(APP, default_timeout=TIMEOUT_S)


def sign_in_as(at: AppTest, role: str, username: str | None = None) -> AppTest:
    """Set the session keys the frame reads for a signed-in user (before ``run``)."""
    at.session_state["auth_username"] = username or f"{role.replace('_', '-')}-user"
    at.session_state["auth_role"] = role
    return at


@pytest.fixture
def app_as(linker_env: Settings) -> Callable[..., AppTest]:
    """``app_as(role, page=None)``: a signed-in AppTest, run once (and switched to ``page``,
    a script name in ``pages/`` like ``integrations.py``)."""
    def make(role: str, page: str | None = None, username: str | None = None) -> AppTest:
        at = sign_in_as(new_app(), role, username)
        at.run()
        assert not at.exception, at.exception
        if page is not None:
            at.switch_page(f"../pages/{page}").run()
        return at

    return make


def make_integration(services: Services, name: str, url: str, **settings: Any
                     ) -> IntegrationView:
    """Create an integration as the system actor (search by email, results name + email)."""
    settings.setdefault("search_query_attributes", (AttributeSpec("email", "Email"),))
    settings.setdefault("search_results_attributes",
                        (AttributeSpec("name", "Name"), AttributeSpec("email", "Email")))
    return services.integrations.create(SYSTEM, IntegrationSpec(name=name, url=url, **settings))


def table(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first ``st.dataframe`` whose columns include ``columns`` (AppTest keeps no key for
    read-only tables)."""
    for frame in at.dataframe:
        value = frame.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}")


@dataclass(frozen=True)
class ShopPerson:
    """A person of the reference shop dataset, by how auto-linking treats them."""

    name: str
    email: str
    external_id: str


def shop_person(kind: str) -> ShopPerson:
    """``unique``: the email finds exactly one shop record (auto-links); ``duplicate``: the
    email is on two records (ambiguous)."""
    dataset = load_dataset("shop")
    duplicates = dataset.duplicate_emails()
    for record in dataset.records:
        email = record.emails[0]
        found = dataset.search(emails=[email])
        if kind == "unique" and email not in duplicates and len(found) == 1:
            return ShopPerson(record.name, email, record.external_customer_id)
        if kind == "duplicate" and email in duplicates and len(found) == 2:
            return ShopPerson(record.name, email, record.external_customer_id)
    raise AssertionError(f"the shop dataset has no {kind} person")


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(markdown: str) -> str:
    """Markdown source as the reader sees it: backslash escapes and the word joiners that keep
    URLs from becoming links (``present.text``) removed."""
    return _ESCAPED.sub(r"\1", markdown).replace(WORD_JOINER, "")


def texts(elements: Any) -> list[str]:
    """The ``.value`` of every element in an AppTest element list, as strings, with Markdown
    backslash escapes removed (what the reader sees)."""
    return [shown(str(element.value)) for element in elements]
