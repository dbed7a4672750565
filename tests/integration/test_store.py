"""The store on SQLite and PostgreSQL: migrations, constraints, sessions, exchanges, retention."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linker.cli.main import main
from linker.contract import RequestKind, Severity, Violation
from linker.lookup.exchange import (
    ErrorKind,
    Exchange,
    ExchangeError,
    RecordedRequest,
    RecordedResponse,
    Trigger,
)
from linker.store import jobqueue, refresh_writes
from linker.store.database import SQLITE_BUSY_TIMEOUT_S, Database, head_revision
from linker.store.exchanges import (
    MAX_STORED_BODY_BYTES,
    load_exchange,
    record_exchange,
    stored_exchange,
)
from linker.store.models import (
    AuditEvent,
    Base,
    Customer,
    CustomerEmail,
    CustomerPhone,
    ExchangeRecord,
    Integration,
    Link,
)
from linker.store.retention import prune_exchanges

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` in ``count`` threads started together; return the errors raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=60)
            work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "threads did not finish within 120 s"
    return errors


def schema_differences(db: Database) -> list[Any]:
    """What autogenerate would change to make the database match the models."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "include_name": jobqueue.include_name})
        return list(compare_metadata(context, Base.metadata))


# --- migrations ---------------------------------------------------------------------------


def test_migration_creates_every_table_exactly_as_modelled(db: Database) -> None:
    assert db.current_revision() == head_revision()
    tables = set(inspect(db.engine).get_table_names())
    queue = {t for t in tables if t.startswith(jobqueue.TABLE_PREFIX)}
    assert set(Base.metadata.tables) | {"alembic_version"} == tables - queue
    # Procrastinate's job queue (migration 0011) exists on PostgreSQL only.
    assert queue == (set() if db.is_sqlite else {
        "procrastinate_jobs", "procrastinate_workers", "procrastinate_events",
        "procrastinate_periodic_defers"})
    assert schema_differences(db) == []


def test_upgrade_on_an_empty_database_from_many_threads_at_once(db_url: str) -> None:
    databases = [Database(db_url) for _ in range(6)]
    revisions: list[str] = []
    try:
        assert databases[0].current_revision() is None
        errors = run_threads(6, lambda i: revisions.append(databases[i].upgrade()))
        assert errors == []
        assert revisions == [head_revision()] * 6
        assert databases[0].upgrade() == head_revision()
        assert schema_differences(databases[0]) == []
    finally:
        for database in databases:
            database.dispose()


# --- constraints the product promises ----------------------------------------------------


def add_customer(session: Session, customer_id: str, *, emails: tuple[str, ...] = (),
                 phones: tuple[tuple[str, str], ...] = ()) -> Customer:
    customer = Customer(id=customer_id, name=customer_id)
    customer.emails = [CustomerEmail(original=e, normalized=e.strip().lower(), position=i)
                       for i, e in enumerate(emails)]
    customer.phones = [CustomerPhone(original=n, e164=n, type=t,
                                     mobile_key=n if t == "MOBILE" else None, position=i)
                       for i, (n, t) in enumerate(phones)]
    session.add(customer)
    return customer


def add_integration(session: Session, name: str = "Shop") -> Integration:
    integration = Integration(name=name, name_key=name.lower(), url="http://127.0.0.1:1/")
    session.add(integration)
    session.flush()
    return integration


def test_second_link_for_the_same_customer_and_integration_is_refused(db: Database) -> None:
    with db.session() as s:
        add_customer(s, "c1")
        integration_id = add_integration(s).id
        s.add(Link(customer_id="c1", integration_id=integration_id, external_customer_id="x1",
                   method="auto"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Link(customer_id="c1", integration_id=integration_id, external_customer_id="x2",
                   method="manual"))
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Link)) == 1


def test_one_external_record_links_to_one_customer_per_integration(db: Database) -> None:
    with db.session() as s:
        add_customer(s, "c1")
        add_customer(s, "c2")
        shop, loyalty = add_integration(s, "Shop").id, add_integration(s, "Loyalty").id
        s.add(Link(customer_id="c1", integration_id=shop, external_customer_id="x1",
                   method="auto"))
        # The same external id in another integration is a different record.
        s.add(Link(customer_id="c2", integration_id=loyalty, external_customer_id="x1",
                   method="auto"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Link(customer_id="c2", integration_id=shop, external_customer_id="x1",
                   method="manual"))


def test_integration_names_are_unique_ignoring_case(db: Database) -> None:
    with db.session() as s:
        add_integration(s, "Shop")
    with pytest.raises(IntegrityError), db.session() as s:
        add_integration(s, "SHOP")


def test_an_email_belongs_to_one_profile(db: Database) -> None:
    with db.session() as s:
        add_customer(s, "c1", emails=("Ann@Example.com",))
    with pytest.raises(IntegrityError), db.session() as s:
        add_customer(s, "c2", emails=(" ann@example.COM ",))
    with db.session() as s:
        assert s.get(Customer, "c2") is None


def test_a_mobile_number_belongs_to_one_profile_but_home_numbers_may_repeat(
        db: Database) -> None:
    with db.session() as s:
        add_customer(s, "c1", phones=(("+14155550100", "MOBILE"), ("+14155550199", "HOME")))
        add_customer(s, "c2", phones=(("+14155550199", "HOME"),))
    with pytest.raises(IntegrityError), db.session() as s:
        add_customer(s, "c3", phones=(("+14155550100", "MOBILE"),))
    with db.session() as s:
        homes = s.scalars(select(CustomerPhone.customer_id)
                          .where(CustomerPhone.e164 == "+14155550199")).all()
        assert sorted(homes) == ["c1", "c2"]


def test_foreign_keys_are_enforced_and_deletes_cascade(db: Database) -> None:
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(CustomerEmail(customer_id="nobody", original="a@b.c", normalized="a@b.c"))
    with db.session() as s:
        add_customer(s, "c1", emails=("a@b.c",))
    with db.session() as s:
        s.delete(s.get(Customer, "c1"))
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CustomerEmail)) == 0


# --- sessions ---------------------------------------------------------------------------


def test_sqlite_connections_are_set_up_for_a_busy_writer(db: Database) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite pragmas")
    with db.engine.connect() as connection:
        pragmas = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                   for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")}
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 1,
                       "busy_timeout": int(SQLITE_BUSY_TIMEOUT_S * 1000)}


def test_session_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    with db.session() as s:
        customer = add_customer(s, "kept")
    assert customer.name == "kept"  # still readable after commit (expire_on_commit=False)
    with pytest.raises(RuntimeError, match="boom"), db.session() as s:
        add_customer(s, "dropped")
        s.flush()
        raise RuntimeError("boom")
    with db.session(readonly=True) as s:
        assert s.scalars(select(Customer.id)).all() == ["kept"]


def test_datetimes_come_back_timezone_aware_utc(db: Database) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.session() as s:
        s.add(Customer(id="c1", created_at=moment, updated_at=moment))
    with db.session() as s:
        created = s.scalars(select(Customer.created_at)).one()
    assert created == moment
    assert created.utcoffset() == timedelta(0)


def test_twenty_threads_reading_then_writing_at_once_all_succeed(db: Database) -> None:
    def work(index: int) -> None:
        with db.session() as s:
            seen = s.scalar(select(func.count()).select_from(AuditEvent))
            s.add(AuditEvent(actor=f"t{index}", role="admin", action="test", entity_type="x",
                             entity_id=str(seen)))

    assert run_threads(20, work) == []
    with db.session() as s:
        counts = sorted(int(e) for e in s.scalars(select(AuditEvent.entity_id)))
    assert len(counts) == 20
    if db.is_sqlite:  # writers queued for the write lock: each saw every earlier commit
        assert counts == list(range(20))


def test_readonly_session_is_not_blocked_by_an_open_writer(db: Database) -> None:
    seen: list[list[str]] = []
    with db.session() as writer:
        add_customer(writer, "pending")
        writer.flush()

        def read(_: int) -> None:
            with db.session(readonly=True) as reader:
                seen.append(list(reader.scalars(select(Customer.id))))

        assert run_threads(1, read) == []
    assert seen == [[]]


# --- exchanges ---------------------------------------------------------------------------


def make_exchange(*, started_at: datetime = NOW, request_body: str = '{"query":{}}',
                  response_body: str | None = "[]", error: ExchangeError | None = None,
                  truncated: bool = False) -> Exchange:
    response = None
    if response_body is not None:
        response = RecordedResponse(status=200, headers={"content-type": "application/json"},
                                    body=response_body, size=len(response_body.encode()),
                                    truncated=truncated)
    return Exchange(
        kind=RequestKind.SEARCH,
        trigger=Trigger.SEARCH,
        correlation_id="vXmSEPjVSWCaCMzvjufxZg",
        started_at=started_at,
        elapsed_ms=12.5,
        request=RecordedRequest(method="POST", url="http://127.0.0.1:9/",
                                headers={"Authorization": "Basic ****"}, body=request_body),
        response=response,
        error=error,
        violations=(Violation("$[0].externalCustomerId", "missing"),
                    Violation("$[0].phones[0]", "not E.164", Severity.WARNING)),
        integration="Shop",
    )


def test_record_exchange_keeps_every_field(db: Database) -> None:
    with db.session() as s:
        add_customer(s, "c1")
        integration_id = add_integration(s).id
        record = record_exchange(s, make_exchange(), integration_id=integration_id,
                                 customer_id="c1", actor="ann", replay_of=None)
        exchange_id = record.id
    with db.session(readonly=True) as s:
        stored = load_exchange(s, exchange_id)
    assert stored is not None
    assert (stored.integration_id, stored.integration_name, stored.customer_id, stored.actor) == (
        integration_id, "Shop", "c1", "ann")
    assert (stored.kind, stored.trigger, stored.started_at) == (
        RequestKind.SEARCH, Trigger.SEARCH, NOW)
    assert stored.request == RecordedRequest("POST", "http://127.0.0.1:9/",
                                             {"Authorization": "Basic ****"}, '{"query":{}}')
    assert stored.response == RecordedResponse(200, {"content-type": "application/json"}, "[]",
                                               2, False)
    assert stored.violations == make_exchange().violations
    assert stored.ok and not stored.body_truncated and stored.result_count == 0
    assert stored.as_dict()["violations"][1]["severity"] == "warning"


def test_failed_exchange_without_response_round_trips(db: Database) -> None:
    failure = ExchangeError(ErrorKind.TIMEOUT, "no answer within 5 s")
    with db.session() as s:
        record = record_exchange(s, make_exchange(response_body=None, error=failure),
                                 integration_id=None, customer_id=None, actor="system",
                                 replay_of=7)
    view = stored_exchange(record)
    assert view.response is None and view.error == failure and not view.ok
    assert view.replay_of == 7


@pytest.mark.parametrize(("size", "truncated"), [(MAX_STORED_BODY_BYTES, False),
                                                 (MAX_STORED_BODY_BYTES + 1, True)])
def test_bodies_over_256_kib_are_stored_truncated(db: Database, size: int,
                                                  truncated: bool) -> None:
    body = "x" * size
    with db.session() as s:
        exchange_id = record_exchange(s, make_exchange(response_body=body), integration_id=None,
                                      customer_id=None, actor="a").id
    with db.session(readonly=True) as s:
        record = s.get(ExchangeRecord, exchange_id)
        assert record is not None
        assert record.body_truncated is truncated
        assert record.response_body == body[:MAX_STORED_BODY_BYTES]
        assert record.response_size == size


def test_truncation_never_splits_a_character_and_covers_request_bodies(db: Database) -> None:
    body = "é" * MAX_STORED_BODY_BYTES  # two bytes each
    with db.session() as s:
        record = record_exchange(s, make_exchange(request_body=body), integration_id=None,
                                 customer_id=None, actor="a")
    assert record.body_truncated
    assert record.request_body == "é" * (MAX_STORED_BODY_BYTES // 2)


def test_a_response_cut_by_the_client_stays_flagged(db: Database) -> None:
    with db.session() as s:
        record = record_exchange(s, make_exchange(truncated=True), integration_id=None,
                                 customer_id=None, actor="a")
    assert record.body_truncated


# --- retention ---------------------------------------------------------------------------


def store_exchanges_aged(db: Database, ages_in_days: list[float]) -> None:
    with db.session() as s:
        for age in ages_in_days:
            record_exchange(s, make_exchange(started_at=NOW - timedelta(days=age)),
                            integration_id=None, customer_id=None, actor="a")


def test_prune_deletes_only_exchanges_older_than_the_age(db: Database) -> None:
    store_exchanges_aged(db, [0, 29.9, 30.1, 45, 400])
    with db.session() as s:
        assert prune_exchanges(s, timedelta(days=30), NOW) == 3
    with db.session() as s:
        left = s.scalars(select(ExchangeRecord.started_at).order_by(ExchangeRecord.started_at))
        assert list(left) == [NOW - timedelta(days=29.9), NOW]
        assert prune_exchanges(s, timedelta(days=30), NOW) == 0


# --- command line --------------------------------------------------------------------------


def test_db_upgrade_creates_the_default_sqlite_database_in_linker_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "fresh" / "home"
    monkeypatch.setenv("LINKER_HOME", str(home))
    monkeypatch.delenv("LINKER_DATABASE_URL", raising=False)
    assert main(["db", "upgrade"]) == 0
    first = capsys.readouterr().out
    assert f"upgraded from empty to revision {head_revision()}" in first
    assert (home / "linker.db").is_file()
    assert main(["db", "upgrade"]) == 0
    assert f"already at revision {head_revision()}" in capsys.readouterr().out


def test_db_upgrade_on_the_configured_database(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LINKER_HOME", str(tmp_path))
    monkeypatch.setenv("LINKER_DATABASE_URL", db_url)
    assert main(["db", "upgrade"]) == 0
    assert head_revision() in capsys.readouterr().out
    database = Database(db_url)
    try:
        assert database.current_revision() == head_revision()
    finally:
        database.dispose()


def test_prune_command_uses_the_given_age_or_the_configured_default(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LINKER_HOME", str(tmp_path))
    monkeypatch.setenv("LINKER_DATABASE_URL", db_url)
    monkeypatch.setenv("LINKER_RETENTION_DAYS", "20")
    database = Database(db_url)
    database.upgrade()
    now = datetime.now(UTC)
    try:
        with database.session() as s:
            for age in (1, 15, 25, 100):
                record_exchange(s, make_exchange(started_at=now - timedelta(days=age)),
                                integration_id=None, customer_id=None, actor="a")
        assert main(["prune", "--older-than", "50"]) == 0
        assert "deleted 1 exchange older than 50 days" in capsys.readouterr().out
        assert main(["prune"]) == 0
        assert "deleted 1 exchange older than 20 days" in capsys.readouterr().out
        with database.session(readonly=True) as s:
            assert s.scalar(select(func.count()).select_from(ExchangeRecord)) == 2
    finally:
        database.dispose()


def test_prune_command_refuses_a_negative_age(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["prune", "--older-than", "-1"])
    assert exit_info.value.code == 2
    assert "between 0 and" in capsys.readouterr().err


# --- the shared fixtures themselves ------------------------------------------------------


def test_ctx_fixture_is_a_migrated_service_context_with_its_own_key(ctx: Any,
                                                                    tmp_path: Path) -> None:
    assert ctx.db.current_revision() == head_revision()
    assert ctx.settings.home == tmp_path
    assert ctx.secrets.decrypt(ctx.secrets.encrypt("pw")) == "pw"
    with ctx.db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Customer)) == 0


def test_the_refresh_reads_of_pairs_search_an_index_instead_of_scanning(db: Database) -> None:
    """A row-value ``IN`` list alone makes SQLite scan every link and all pulled data once
    per DETAILED batch, so a backfill slowed as the database grew; the reads must search."""
    if not db.is_sqlite:
        pytest.skip("SQLite's query planner")
    statements: list[tuple[str, Any]] = []

    def remember(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                 executemany: bool) -> None:
        statements.append((statement, parameters))

    pairs = [("c1", 1), ("c2", 1), ("c3", 2)]
    event.listen(db.engine, "before_cursor_execute", remember)
    try:
        with db.session(readonly=True) as s:
            assert refresh_writes.lock_links(s, pairs) == {}
            assert refresh_writes.pulled_values(s, pairs) == {}
    finally:
        event.remove(db.engine, "before_cursor_execute", remember)
    reads = [(q, p) for q, p in statements if q.lstrip().startswith("SELECT")]
    assert len(reads) == 2
    with db.engine.connect() as connection:
        for query, parameters in reads:
            plan = [row[-1] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + query, parameters)]
            assert any(step.startswith(("SEARCH links", "SEARCH pulled_data"))
                       for step in plan), plan
            assert not any(step.startswith(("SCAN links", "SCAN pulled_data"))
                           for step in plan), plan
