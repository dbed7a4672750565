"""The debugger's exchange log: keyset pages and filters, replay with a body diff, Copy as
cURL (run for real against a loopback adaptor) and the redacted JSONL export."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from linker.adaptor import BackgroundServer, create_app
from linker.cli.main import main
from linker.core.permissions import Actor, Role
from linker.jsondiff import ChangeOp
from linker.lookup import Trigger
from linker.services.context import ServiceContext
from linker.services.errors import InvalidInput, NotFound, PermissionDenied
from linker.services.exchange_log import Cursor, ExchangeFilter, ExchangeLogService
from linker.services.integrations import IntegrationService
from linker.services.replay import ReplayService
from linker.store.models import ExchangeRecord, Integration
from tests.integration.world import SIGNING_KEY, World, unique_record

DEV = Actor("dana", Role.DEVELOPER)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PASSWORD = "log-tests-password-77"
API_KEY = "log-tests-api-key-9911"


def _seed(ctx: ServiceContext, n: int) -> list[int]:
    """``n`` exchanges over two integrations; every third shares its time with the next."""
    ids = []
    with ctx.db.session() as s:
        shop = Integration(name="Shop", name_key="shop", url="http://127.0.0.1:9/")
        travel = Integration(name="Travel", name_key="travel", url="http://127.0.0.1:9/")
        s.add_all([shop, travel])
        s.flush()
        for i in range(n):
            integration = shop if i % 2 == 0 else travel
            failed = i % 5 == 0
            record = ExchangeRecord(
                integration_id=integration.id, integration_name=integration.name,
                customer_id=f"c{i % 4}", actor="agent", kind="search",
                trigger="search" if i % 3 else "autolink", correlation_id=f"corr-{i}",
                started_at=T0 + timedelta(seconds=i - i % 3), elapsed_ms=10.0 + i,
                method="POST", url="http://127.0.0.1:9/", request_headers={},
                request_body="{}", response_status=500 if failed else 200,
                response_headers={}, response_body="{}", response_size=2,
                error_kind="http_status" if failed else None)
            s.add(record)
            s.flush()
            ids.append(record.id)
    return ids


def _all_pages(log: ExchangeLogService, f: ExchangeFilter, size: int) -> list[int]:
    seen: list[int] = []
    cursor: Cursor | str | None = None
    while True:
        page = log.page(DEV, f, after=cursor, limit=size)
        seen += [row.id for row in page.rows]
        if page.next_cursor is None:
            return seen
        cursor = str(page.next_cursor) if len(seen) % 2 else page.next_cursor


def _expected(ctx: ServiceContext, where: object = None) -> list[int]:
    with ctx.db.session() as s:
        query = select(ExchangeRecord.id, ExchangeRecord.started_at)
        if where is not None:
            query = query.where(where)  # type: ignore[arg-type]
        rows = s.execute(query).all()
    return [r.id for r in sorted(rows, key=lambda r: (r.started_at, r.id), reverse=True)]


def test_pages_walk_the_whole_log_newest_first_without_gaps_or_repeats(
        ctx: ServiceContext) -> None:
    _seed(ctx, 47)
    log = ExchangeLogService(ctx)
    for size in (1, 5, 10, 47, 100):
        assert _all_pages(log, ExchangeFilter(), size) == _expected(ctx)
    first = log.page(DEV, limit=10)
    assert len(first.rows) == 10 and first.next_cursor == first.rows[-1].cursor
    assert log.page(DEV, limit=47).next_cursor is None


@pytest.mark.parametrize(("f", "column", "value"), [
    (ExchangeFilter(trigger="autolink"), ExchangeRecord.trigger, "autolink"),
    (ExchangeFilter(error_kind="http_status"), ExchangeRecord.error_kind, "http_status"),
    (ExchangeFilter(status=200), ExchangeRecord.response_status, 200),
    (ExchangeFilter(customer_id="c1"), ExchangeRecord.customer_id, "c1"),
    (ExchangeFilter(correlation_id=" corr-7 "), ExchangeRecord.correlation_id, "corr-7"),
])
def test_each_filter_pages_to_exactly_its_rows(ctx: ServiceContext, f: ExchangeFilter,
                                               column: object, value: object) -> None:
    _seed(ctx, 40)
    expected = _expected(ctx, column == value)
    assert expected and _all_pages(ExchangeLogService(ctx), f, 3) == expected


def test_integration_ok_and_time_range_filters(ctx: ServiceContext) -> None:
    _seed(ctx, 30)
    log = ExchangeLogService(ctx)
    with ctx.db.session() as s:
        travel = s.scalar(select(Integration.id).where(Integration.name_key == "travel"))
    rows = _all_pages(log, ExchangeFilter(integration_id=travel, error_kind="ok"), 4)
    assert rows == _expected(ctx, (ExchangeRecord.integration_id == travel)
                             & ExchangeRecord.error_kind.is_(None))
    since, until = T0 + timedelta(seconds=6), T0 + timedelta(seconds=12)
    window = _all_pages(log, ExchangeFilter(since=since, until=until), 2)
    assert window == _expected(ctx, ExchangeRecord.started_at.between(
        since, until - timedelta(microseconds=1)))
    assert window


def test_bad_filters_and_cursors_say_what_to_do(ctx: ServiceContext) -> None:
    log = ExchangeLogService(ctx)
    with pytest.raises(InvalidInput, match="not a trigger"):
        log.page(DEV, ExchangeFilter(trigger="nope"))
    with pytest.raises(InvalidInput, match="not an error kind"):
        log.page(DEV, ExchangeFilter(error_kind="boom"))
    with pytest.raises(InvalidInput, match="after its start"):
        log.page(DEV, ExchangeFilter(since=T0, until=T0))
    with pytest.raises(InvalidInput, match="first page"):
        log.page(DEV, after="garbage")
    with pytest.raises(NotFound, match="pruned"):
        log.get(DEV, 12345)


@pytest.mark.parametrize("role", list(Role))
def test_roles(ctx: ServiceContext, role: Role) -> None:
    ids = _seed(ctx, 3)
    actor = Actor("someone", role)
    log, replay = ExchangeLogService(ctx), ReplayService(ctx)
    calls = [lambda: log.page(actor), lambda: log.get(actor, ids[0]),
             lambda: log.curl(actor, ids[0]), lambda: list(log.export_jsonl(actor)),
             lambda: replay.replay(actor, 999)]
    for call in calls:
        if role in (Role.ADMIN, Role.DEVELOPER):
            with contextlib.suppress(NotFound):
                call()
        else:
            with pytest.raises(PermissionDenied):
                call()


# --- replay, cURL and export against real adaptors -------------------------------------------

def _probe(world: World, name: str) -> int:
    record = unique_record()
    integration_id = next(i for i, n in _integrations(world.ctx) if n == name)
    exchange = IntegrationService(world.ctx).test_connection(DEV, integration_id,
                                                             email=record.emails[0])
    assert exchange.ok, exchange.error
    return exchange.id


def _integrations(ctx: ServiceContext) -> list[tuple[int, str]]:
    with ctx.db.session() as s:
        return [(i.id, i.name) for i in s.scalars(select(Integration))]


def test_replay_resends_signed_now_stores_and_diffs(world: World) -> None:
    world.add_integration("Shop", "shop")
    original_id = _probe(world, "Shop")
    calls = world.calls("Shop")
    same = ReplayService(world.ctx).replay(DEV, original_id)
    assert world.calls("Shop") == calls + 1
    assert same.replay.ok and same.replay.trigger is Trigger.REPLAY
    assert same.replay.replay_of == original_id and same.replay.actor == "dana"
    assert same.replay.correlation_id != same.original.correlation_id
    assert same.replay.request.body == same.original.request.body
    assert same.diff.mode == "json" and same.diff.same and not same.url_changed

    world.serve("Shop", "shop", "numeric-values")
    changed = ReplayService(world.ctx).replay(DEV, original_id)
    assert changed.diff.mode == "json" and not changed.diff.same
    assert all(c.op is ChangeOp.CHANGED for c in changed.diff.changes)
    assert "$.results[0].externalCustomerId" in {c.path for c in changed.diff.changes}

    world.serve("Shop", "shop", "html-error")
    html = ReplayService(world.ctx).replay(DEV, original_id)
    assert not html.replay.ok and html.diff.mode == "text" and html.diff.text_lines
    log = ExchangeLogService(world.ctx).page(DEV, ExchangeFilter(trigger="replay"))
    assert [r.replay_of for r in log.rows] == [original_id] * 3
    stored = json.dumps([e.__dict__ for e in world.exchanges()], default=str)
    assert SIGNING_KEY not in stored and "Signature=****" in stored


def test_replay_of_a_deleted_integration_says_why(world: World) -> None:
    world.add_integration("Shop", "shop")
    original_id = _probe(world, "Shop")
    with world.ctx.db.session() as s:
        record = s.get(ExchangeRecord, original_id)
        assert record is not None
        record.integration_id = None
    with pytest.raises(NotFound, match="no longer exists"):
        ReplayService(world.ctx).replay(DEV, original_id)


def _secret_integration(ctx: ServiceContext, url: str) -> int:
    with ctx.db.session() as s:
        integration = Integration(
            name="Secure", name_key="secure", url=url, username="linker",
            password_enc=ctx.secrets.encrypt(PASSWORD),
            signing_key_enc=ctx.secrets.encrypt(""),
            headers=[{"name": "X-Api-Key", "value_enc": ctx.secrets.encrypt(API_KEY),
                      "secret": True}, {"name": "X-Tenant", "value": "eu-1", "secret": False}],
            search_query_attributes=[{"attribute": "email", "label": "Email"}])
        s.add(integration)
        s.flush()
        return integration.id


def test_copy_as_curl_reproduces_the_request_over_loopback(ctx: ServiceContext) -> None:
    record = unique_record()
    app = create_app("shop", username="linker", password=PASSWORD)
    with BackgroundServer(app) as server:
        integration_id = _secret_integration(ctx, server.url + "lookup")
        probe = IntegrationService(ctx).test_connection(DEV, integration_id,
                                                        email=record.emails[0])
        assert probe.ok, probe.error
        curl = ExchangeLogService(ctx).curl(DEV, probe.id)
        for secret in (PASSWORD, API_KEY):
            assert secret not in curl.command and secret not in curl.lookup_command
        env = {**os.environ, "LINKER_LOOKUP_PASSWORD": PASSWORD,
               "LINKER_HEADER_X_API_KEY": API_KEY}
        done = subprocess.run(["bash", "-c", curl.command], env=env, capture_output=True,
                              text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert [r["externalCustomerId"] for r in answer["results"]][:1] == [
            record.external_customer_id]
        wrong = subprocess.run(["bash", "-c", curl.command + " -w '%{http_code}' -o /dev/null"],
                               env={**env, "LINKER_LOOKUP_PASSWORD": "wrong"},
                               capture_output=True, text=True, timeout=30, check=False)
        assert wrong.stdout == "401"


def test_curl_of_a_signed_request_asks_for_a_new_signature(world: World) -> None:
    world.add_integration("Shop", "shop")
    curl = ExchangeLogService(world.ctx).curl(DEV, _probe(world, "Shop"))
    assert "${LINKER_GLADLY_AUTHORIZATION}" in curl.command and "recomputed" in curl.note
    assert SIGNING_KEY not in curl.command + curl.lookup_command
    assert "linker lookup http://shop.test/lookup --basic --email" in curl.lookup_command
    assert "LINKER_LOOKUP_SIGNING_KEY" in {e.name for e in curl.env}


def test_export_streams_filtered_redacted_lines_newest_first(ctx: ServiceContext) -> None:
    ids = _seed(ctx, 1200)
    with ctx.db.session() as s:
        shop = s.scalar(select(Integration).where(Integration.name_key == "shop"))
        assert shop is not None
        shop.password_enc = ctx.secrets.encrypt(PASSWORD)
        leaked = s.get(ExchangeRecord, ids[0])
        assert leaked is not None
        leaked.response_body = json.dumps({"echo": f"pw={PASSWORD}"})
    log = ExchangeLogService(ctx)
    lines = list(log.export_jsonl(DEV, ExchangeFilter(integration_name="shop")))
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == _expected(ctx, ExchangeRecord.integration_id == shop.id)
    assert len(rows) == 600 and PASSWORD not in "".join(lines)
    assert json.loads(rows[-1]["response"]["body"]) == {"echo": "pw=****"}


def test_cli_export_with_filters(ctx: ServiceContext, settings: object,
                                 monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    _seed(ctx, 20)
    monkeypatch.setenv("LINKER_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("LINKER_HOME", str(ctx.settings.home))
    monkeypatch.setenv("LINKER_SECRET_KEY", ctx.settings.secret_key or "")
    assert main(["exchanges", "export", "--integration", "Travel", "--trigger", "search",
                 "--error-kind", "ok", "--status", "200", "--until", "2026-12-01T09:00:15"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(r["integration"] == "Travel" and r["trigger"] == "search"
                        and r["error"] is None for r in rows)
    assert all(r["started_at"] < "2026-12-01T09:00:15" for r in rows)
    assert main(["exchanges", "export", "--error-kind", "nonsense"]) == 1
    assert "not an error kind" in capsys.readouterr().err


def _cli_env(ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKER_DATABASE_URL", ctx.settings.database_url)
    monkeypatch.setenv("LINKER_HOME", str(ctx.settings.home))
    monkeypatch.setenv("LINKER_SECRET_KEY", ctx.settings.secret_key or "")


def test_cli_list_pages_with_the_printed_cursor(ctx: ServiceContext,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _seed(ctx, 7)
    _cli_env(ctx, monkeypatch)
    assert main(["exchanges", "list", "--limit", "4", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["exchanges", "list", "--limit", "4", "--json", "--after",
                 first["next_cursor"]]) == 0
    second = json.loads(capsys.readouterr().out)
    ids = [r["id"] for r in first["rows"] + second["rows"]]
    assert ids == _expected(ctx) and second["next_cursor"] is None
    assert main(["exchanges", "list", "--limit", "4"]) == 0
    human = capsys.readouterr().out
    assert f"next page: --after {first['next_cursor']}" in human and "Travel" in human
    assert main(["exchanges", "list", "--after", "nonsense"]) == 1
    assert "first page" in capsys.readouterr().err


def test_cli_show_curl_and_replay_over_loopback(ctx: ServiceContext,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    record = unique_record()
    with BackgroundServer(create_app("shop", username="linker", password=PASSWORD)) as server:
        integration_id = _secret_integration(ctx, server.url)
        probe = IntegrationService(ctx).test_connection(DEV, integration_id,
                                                        email=record.emails[0])
        _cli_env(ctx, monkeypatch)
        assert main(["exchanges", "show", str(probe.id)]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["id"] == probe.id and shown["request"]["headers"]["X-Api-Key"] == "****"
        assert main(["exchanges", "curl", str(probe.id)]) == 0
        curl = capsys.readouterr().out
        assert curl.startswith("curl -sS") and "# or let Linker sign it:" in curl
        assert main(["exchanges", "replay", str(probe.id)]) == 0
        replayed = capsys.readouterr().out
        assert f"replayed exchange {probe.id} as exchange" in replayed
        assert "the response bodies are the same" in replayed
        assert main(["exchanges", "replay", str(probe.id), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["replay"]["trigger"] == "replay" and data["diff"]["same"]
        everything = shown.__repr__() + curl + replayed + json.dumps(data)
        assert PASSWORD not in everything and API_KEY not in everything
    assert main(["exchanges", "replay", "424242"]) == 1
    assert "does not exist" in capsys.readouterr().err
