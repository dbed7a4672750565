"""The demo history's exchanges look like real ones: each starts at its own moment and carries
the request a real lookup sends (signed headers, Gladly-Time matching the start, the contract's
body), stored the way a real exchange is (signature and credentials masked), so Copy as cURL of
a seeded exchange is as complete as one of a real exchange."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from linker import signing
from linker.adaptor import create_app
from linker.config import Settings
from linker.contract import LookupRequest, request_kind
from linker.contract.requests import autolink_request
from linker.core.permissions import SYSTEM
from linker.demo import DEMO_INTEGRATIONS
from linker.demo_history import seed_history
from linker.lookup import AdaptorTarget, LookupClient
from linker.redaction import MASK
from linker.services.context import ServiceContext
from linker.services.exchange_log import ExchangeLogService
from linker.store.models import ExchangeRecord
from linker.store.secretbox import generate_key
from tests.integration.test_demo_history import NOW, integrations

PROFILES = 300
LOYALTY = next(i for i in DEMO_INTEGRATIONS if i.name == "Loyalty")


def seeded(ctx: ServiceContext) -> list[ExchangeRecord]:
    """The demo integrations, a small history, and every exchange it wrote."""
    integrations(ctx)
    seed_history(ctx.db, profiles=PROFILES, now=NOW, seed=5)
    with ctx.db.session(readonly=True) as s:
        return list(s.scalars(select(ExchangeRecord).order_by(ExchangeRecord.id)))


def real_loyalty_request(url: str) -> dict[str, str]:
    """The headers a real auto-link lookup to Loyalty records (sent to an in-process Loyalty
    adaptor that checks the signature and the Basic credentials)."""
    app = create_app("loyalty", signing_key=LOYALTY.signing_key, username=LOYALTY.username,
                     password=LOYALTY.password)
    client = LookupClient(transport=httpx.ASGITransport(app=app))
    target = AdaptorTarget(url=url, name="Loyalty", username=LOYALTY.username,
                           password=LOYALTY.password, signing_key=LOYALTY.signing_key)
    exchange = client.lookup_sync(target, autolink_request("c1", "Ana", ["ana@example.com"], []))
    assert exchange.response is not None and exchange.response.status == 200, exchange.error
    return exchange.request.headers


def test_seeded_exchanges_start_at_distinct_moments(ctx: ServiceContext) -> None:
    rows = seeded(ctx)
    starts = Counter(row.started_at for row in rows)
    assert len(rows) > 1000
    assert [(at, n) for at, n in starts.items() if n > 1] == []
    assert all(row.started_at.replace(tzinfo=UTC) <= NOW for row in rows)


def recorded_by_the_client(row: ExchangeRecord) -> dict[str, str]:
    """The headers the lookup client builds for the row's request, moment and id, masked the
    way a real exchange is stored."""
    demo = next(i for i in DEMO_INTEGRATIONS if i.name == row.integration_name)
    target = AdaptorTarget(url=row.url, name=demo.name, username=demo.username,
                           password=demo.password, signing_key=demo.signing_key)
    raw_id = base64.urlsafe_b64decode(row.correlation_id + "==")
    client = LookupClient(now=lambda: row.started_at.replace(tzinfo=UTC),
                          new_id=lambda: raw_id)
    prepared = client.prepare(target, LookupRequest.model_validate_json(row.request_body))
    return target.redactor().headers(prepared.header_pairs())


def test_seeded_requests_carry_what_a_real_request_carries(ctx: ServiceContext) -> None:
    rows = seeded(ctx)
    loyalty_url = next(r.url for r in rows if r.integration_name == "Loyalty")
    real = real_loyalty_request(loyalty_url)
    for row in rows:
        assert row.request_headers == recorded_by_the_client(row), row.id
        headers, body = row.request_headers, row.request_body
        started = row.started_at.replace(tzinfo=UTC)
        if row.integration_name == "Loyalty":
            assert list(headers) == list(real), row.id
            assert headers["Authorization"] == real["Authorization"] == f"Basic {MASK}"
        assert headers["Accept"] == headers["Content-Type"] == "application/json"
        assert headers["Gladly-Time"] == signing.format_time(started), row.id
        assert headers["Gladly-Correlation-Id"] == row.correlation_id
        raw = base64.urlsafe_b64decode(row.correlation_id + "==")
        assert len(raw) == 16 and headers["X-B3-Traceid"] == raw.hex()
        assert headers["Content-Length"] == str(len(body.encode()))
        authorization = signing.parse_authorization(headers["Gladly-Authorization"])
        unsigned = {k: v for k, v in headers.items() if k != "Gladly-Authorization"}
        assert list(authorization.signed_headers) == signing.signable_header_names(unsigned)
        assert authorization.signature == MASK.lower()
        request = LookupRequest.model_validate(json.loads(body))
        assert request.body().decode() == body  # the bytes a real client sends
        assert request_kind(request).value == row.kind, row.id
        assert request.query["id"] == row.customer_id


def test_copy_as_curl_of_a_seeded_exchange_is_complete(ctx: ServiceContext) -> None:
    rows = seeded(ctx)
    row = next(r for r in rows if r.integration_name == "Loyalty" and r.kind == "autolink")
    curl = ExchangeLogService(ctx).curl(SYSTEM, row.id)
    time = signing.format_time(row.started_at.replace(tzinfo=UTC))
    assert f"-H 'Gladly-Time: {time}'" in curl.command
    assert f"-H 'Gladly-Correlation-Id: {row.correlation_id}'" in curl.command
    assert "-H 'X-B3-Traceid: " in curl.command
    assert '-H "Gladly-Authorization: ${LINKER_GLADLY_AUTHORIZATION}"' in curl.command
    assert '-u "linker:${LINKER_LOOKUP_PASSWORD}"' in curl.command
    # The signing equivalent: linker lookup signs the same auto-link request itself.
    assert curl.lookup_command.startswith(f"linker lookup {row.url} --autolink")
    assert "--username linker" in curl.lookup_command
    assert {e.name for e in curl.env} >= {"LINKER_GLADLY_AUTHORIZATION",
                                          "LINKER_LOOKUP_PASSWORD", "LINKER_LOOKUP_SIGNING_KEY"}


def as_written(rows: list[ExchangeRecord]) -> list[tuple[Any, ...]]:
    """What the history wrote for each exchange."""
    return [(r.id, r.integration_name, r.customer_id, r.kind, r.started_at, r.correlation_id,
             r.elapsed_ms, r.request_headers, r.request_body, r.response_headers,
             r.response_body) for r in rows]


def test_the_same_seed_writes_the_same_exchanges(ctx: ServiceContext, tmp_path: Path) -> None:
    other = ServiceContext.from_settings(Settings(
        home=tmp_path / "other", database_url=f"sqlite:///{tmp_path / 'other.db'}",
        secret_key=generate_key()))
    try:
        assert as_written(seeded(ctx)) == as_written(seeded(other))
    finally:
        other.db.dispose()
