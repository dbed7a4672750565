"""First render of every console page on the demo data, and the time the Link workbench adds
beyond the adaptors' own, with AppTest (the script runs the tests use), on SQLite or
PostgreSQL.

Run: ``.venv/bin/python bench/demo_pages.py [--database-url postgresql+psycopg://...]
[--rounds 3] [--latency-ms 30]``

The demo is seeded as ``linker demo --no-ui`` seeds it (``seed_demo`` + ``seed_history``: the
integrations, the accounts, about fifty profiles created through the services against the real
adaptors, 2,000 profiles with a month of history) into a new SQLite file, or into a new database
created on the PostgreSQL server of ``--database-url`` (dropped at the end). The demo adaptors
serve on loopback with a fixed ``latency:MS`` fault, so each answers in about ``--latency-ms``.

Pages: every round starts from empty data caches (the services resource stays, as in a running
server) and signs an admin in; the first run is the frame plus Health (everyone lands there),
then each page's first render is one ``switch_page``.

Workbench: an agent finds a demo customer whose email two Shop records share, searches every
unlinked system, searches Shop, selects the first row and links it, then refreshes Shop. For
each action the adaptors' own time is the union of the intervals of the exchanges it stored;
"added" is the wall time of the script run minus that. The process's CPU time (the in-process
adaptors' included) and the SQL statements every engine executed during the action hardly
depend on the machine's load, unlike the wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import streamlit as st
from apptest_pages import print_medians, signed_in, timed
from machine import describe_machine
from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.engine import make_url
from streamlit.testing.v1 import AppTest

from linker.config import Settings
from linker.demo import (
    DEMO_INTEGRATIONS,
    DemoAdaptors,
    demo_customers,
    open_demo_context,
    seed_demo,
)
from linker.demo_history import seed_history
from linker.store.database import display_url
from linker.store.models import ExchangeRecord, Integration

PAGES = (("Link workbench", "workbench.py"), ("Integrations", "integrations.py"),
         ("Auto-linking", "autolinking.py"), ("Adaptor debugger", "debugger.py"),
         ("Coverage", "coverage.py"), ("Audit log", "audit.py"))
SELECT_ROW_0 = {"selection": {"rows": [0], "columns": [], "cells": []}}


@contextmanager
def database(url: str, home: Path) -> Iterator[str]:
    """A new, empty database: a SQLite file under ``home``, or a fresh database on the
    PostgreSQL server of ``url`` (dropped afterwards)."""
    if not url:
        yield f"sqlite:///{home / 'linker.db'}"
        return
    name = f"linker_demo_bench_{uuid.uuid4().hex[:8]}"
    server = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def page_round() -> dict[str, float]:
    """One round of first renders (empty data caches)."""
    st.cache_data.clear()
    at = signed_in("admin")
    figures = {"frame + Health (lands there)": timed(at.run)[0]}
    for title, script in PAGES:
        st.cache_data.clear()
        figures[title] = timed(lambda s=script: at.switch_page(f"../pages/{s}").run())[0]
    return figures


class ExchangeClock:
    """The adaptors' own time of the exchanges stored since the last ``mark``."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.last = self._max_id()

    def _max_id(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.scalar(select(ExchangeRecord.id).order_by(
                ExchangeRecord.id.desc()).limit(1)) or 0)

    def since_mark(self) -> tuple[int, float]:
        """(exchanges, seconds the adaptors were busy: the union of their intervals)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(ExchangeRecord.id, ExchangeRecord.started_at, ExchangeRecord.elapsed_ms)
                .where(ExchangeRecord.id > self.last)).all()
        self.last = max([self.last, *(r.id for r in rows)])
        spans = sorted((r.started_at, r.started_at + timedelta(milliseconds=r.elapsed_ms))
                       for r in rows)
        busy, end = 0.0, None
        for start, stop in spans:
            if end is None or start > end:
                busy += (stop - start).total_seconds()
                end = stop
            elif stop > end:
                busy += (stop - end).total_seconds()
                end = stop
        return len(rows), busy


class StatementCounter:
    """How many SQL statements every engine of the process has executed."""

    def __init__(self) -> None:
        self.count = 0
        event.listen(Engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: object) -> None:
        self.count += 1


STATEMENTS = StatementCounter()


def workbench_round(url: str, email: str) -> dict[str, tuple[float, int, float, float, int]]:
    """The agent's actions: (wall seconds, exchanges, adaptor seconds, process CPU seconds,
    SQL statements) each. CPU and statements hardly depend on the machine's load."""
    st.cache_data.clear()
    clock = ExchangeClock(url)
    at = signed_in("agent")
    at.run()
    at.switch_page("../pages/workbench.py").run()
    results: dict[str, tuple[float, int, float, float, int]] = {}

    def step(name: str, action: Callable[[], AppTest]) -> AppTest:
        clock.since_mark()
        cpu, statements = time.process_time(), STATEMENTS.count
        wall, app = timed(action)
        cpu, statements = time.process_time() - cpu, STATEMENTS.count - statements
        results[name] = (wall, *clock.since_mark(), cpu, statements)
        return app

    at.selectbox(key="wb.find.by").select("Email")
    at.text_input(key="wb.find.query").input(email)
    at = step("find + open the profile", lambda: at.button(key="wb.find.submit").click().run())
    at = step("search all unlinked systems",
              lambda: at.button(key="wb.search.submit").click().run())
    at.selectbox(key="wb.search.in").select("Shop")
    at.run()
    at = step("search Shop", lambda: at.button(key="wb.search.submit").click().run())
    [table] = [d.key for d in at.dataframe if str(d.key).startswith("wb.results.")]
    at.session_state[str(table)] = SELECT_ROW_0  # the results table is keyed per profile and search
    at.run()
    at = step("link (+ its detailed lookup)", lambda: at.button(key="wb.link.submit").click().run())
    with clock.engine.connect() as connection:
        shop = connection.scalar(select(Integration.id).where(Integration.name == "Shop"))
    step("refresh Shop", lambda: at.button(key=f"wb.refresh.{shop}").click().run())
    return results


def main(argv: list[str] | None = None) -> int:
    """Seed the demo, then time ``--rounds`` rounds of pages and of workbench actions."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server URL (a new database is made on it)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=30)
    args = parser.parse_args(argv)
    print(describe_machine())
    home = Path(tempfile.mkdtemp(prefix="linker-demo-bench-"))
    integrations = [replace(i, faults=(*i.faults, f"latency:{args.latency_ms}"))
                    for i in DEMO_INTEGRATIONS]
    with database(args.database_url, home) as url, \
            DemoAdaptors(dict.fromkeys((i.key for i in integrations), 0),
                         integrations=integrations) as adaptors:
        print(f"database: {display_url(url)}; adaptors answer in ~{args.latency_ms} ms")
        settings = Settings(home=home, database_url=url, secret_key=None)
        ctx = open_demo_context(settings)
        start = time.perf_counter()
        customers = demo_customers()
        seed_demo(ctx, adaptors.urls, customers=customers, integrations=integrations)
        seed_history(ctx.db)
        ctx.db.dispose()
        print(f"seeded in {time.perf_counter() - start:.1f} s")
        os.environ.update(LINKER_DATABASE_URL=url, LINKER_HOME=str(home))
        for name in ("LINKER_DEV_ROLE", "LINKER_SECRET_KEY"):
            os.environ.pop(name, None)
        # One profile per round (linking it twice would be refused): the shared-email ones.
        emails = [c.emails[0] for c in customers if c.kind == "duplicate_email"]
        pages = [page_round() for _ in range(args.rounds)]
        bench = [workbench_round(url, emails[n % len(emails)]) for n in range(args.rounds)]
    print_medians("first render", pages, 34)
    print(f"\n{'workbench action':<34} {'wall':>8} {'calls':>6} {'adaptors':>9} {'added':>8} "
          f"{'CPU':>8} {'SQL':>5}")
    for step in bench[0]:
        rows = [r[step] for r in bench if step in r]
        wall = statistics.median(r[0] for r in rows)
        busy = statistics.median(r[2] for r in rows)
        cpu = statistics.median(r[3] for r in rows)
        sql = statistics.median(r[4] for r in rows)
        print(f"{step:<34} {wall * 1000:>6.0f}ms {rows[0][1]:>6} {busy * 1000:>7.0f}ms "
              f"{(wall - busy) * 1000:>6.0f}ms {cpu * 1000:>6.0f}ms {sql:>5.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
