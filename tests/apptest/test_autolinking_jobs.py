"""Auto-linking page on PostgreSQL with a worker pool: the backfill is queued as chunk jobs
(never run in the script thread), its progress and Cancel come from the database, and a new
dashboard (caches cleared, new session) still shows the running backfill.

A worker is "present" when ``procrastinate_workers`` holds a fresh heartbeat: the test
registers one there (the queue's own table) without a process behind it, so the queued jobs
wait and the page can be looked at mid-run; the workers themselves are tested in
tests/integration/test_jobs.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import text

from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.services.backfill_jobs import CHUNK_TASK
from linker.services.facade import Services
from linker.store import jobqueue
from linker.store.secretbox import generate_key
from tests.apptest.conftest import make_integration, shop_person, shown, texts
from tests.apptest.test_autolinking_page import PAGE, import_people, run_until
from tests.integration.conftest import POSTGRES_URL_ENV, postgres_schema

pytestmark = pytest.mark.postgres


@pytest.fixture
def linker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The app's environment on a new PostgreSQL schema (this module only)."""
    base = os.environ.get(POSTGRES_URL_ENV, "")
    if not base:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set: queued backfills need PostgreSQL")
    with postgres_schema(base) as url:
        monkeypatch.setenv("LINKER_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("LINKER_DATABASE_URL", url)
        monkeypatch.setenv("LINKER_SECRET_KEY", generate_key())
        monkeypatch.delenv("LINKER_DEV_ROLE", raising=False)
        monkeypatch.delenv("LINKER_ENV", raising=False)
        yield Settings.from_env()
        st.cache_resource.clear()  # the app's engine, before the schema is dropped


def register_worker(services: Services) -> None:
    with services.ctx.db.session() as s:
        s.execute(text("INSERT INTO procrastinate_workers DEFAULT VALUES"))


def chunk_statuses(services: Services) -> list[str]:
    with services.ctx.db.session(readonly=True) as s:
        return sorted(r.status for r in jobqueue.jobs_of_run(
            s, CHUNK_TASK, jobqueue.latest_run(s, CHUNK_TASK) or ""))


def test_a_run_is_queued_for_the_workers_and_survives_a_new_dashboard(
        app_as: Callable[..., object], services: Services, shop_url: str) -> None:
    make_integration(services, "Shop", shop_url, autolink_enabled=True,
                     autolink_fields=("email",))
    unique = shop_person("unique")
    import_people(services, (unique.name, unique.email),
                  ("Nobody Known", "nobody.known@nowhere.example"))
    register_worker(services)
    at = app_as("admin", page=PAGE)
    at.button(key="backfill.dry_run").click().run()  # the dry run still runs here
    run_until(at, lambda a: any("Dry run of Shop" in m for m in texts(a.markdown)),
              "the dry run summary")
    at.button(key="backfill.run").click().run()
    assert not at.exception, at.exception
    assert any("Backfill queued for the workers: 1 chunk job(s), 2 profile(s)" in m
               for m in texts(at.success))
    assert chunk_statuses(services) == ["todo"]
    assert services.reports.coverage(SYSTEM).linked == 0  # queued, not run in this process
    (bar,) = at.progress
    assert "on the workers: 0 of 2 profiles" in shown(bar.proto.text)

    st.cache_resource.clear()  # a dashboard restart: new process caches, new session
    again = app_as("admin", page=PAGE)
    (bar,) = again.progress
    assert "Backfill of Shop on the workers: 0 of 2 profiles" in shown(bar.proto.text)
    again.button(key="backfill.cancel_jobs").click().run()
    assert not again.exception, again.exception
    assert chunk_statuses(services) == ["cancelled"]
    run_until(again, lambda a: not a.progress, "the page to show the controls again")
    assert any("Last backfill on the workers (Shop): 0 of 2 profiles" in shown(c)
               for c in texts(again.caption))
