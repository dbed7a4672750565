"""Secret-leak scan: adaptors echo the credentials they were sent (and the ones they know) back
raw, JSON-escaped, Go-escaped, URL-encoded and base64-encoded; every flow runs against them;
then every output is searched for every secret in every form. Zero hits.

Two integrations over real loopback sockets: "Echo" (Basic password, signing key and a secret
header, with quotes, backslashes and non-ASCII characters) answers valid contract JSON full of
echoes; "Echo short" (a 2-character password) answers 500 with a text body of echoes.
Scanned: what every service call returned, CLI stdout/stderr (``linker lookup``, ``exchanges
list|show|curl|export``, ``integrations list|apply|test``), every log record (caplog, DEBUG),
the exchange-log JSONL export, the audit and coverage CSV exports, every element AppTest
rendered on each console page (its protobuf bytes), every column of every database row and
every file in the data folder (the SQLite file itself included).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy import MetaData, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from streamlit.testing.v1 import AppTest

from dashboard import present
from linker.adaptor import BackgroundServer
from linker.cli.main import main
from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.redaction import MASK
from linker.services.customers import CustomerService
from linker.services.facade import Services
from linker.services.integrations import AttributeSpec, HeaderSpec, IntegrationSpec
from linker.store.secretbox import generate_key

USERNAME = "leak-user"
PASSWORD = 'pw"\\é<Leak&7f3'
SIGNING_KEY = 'sk\\"ñ>Leak9c1'
HEADER_SECRET = 'hs"\\Leak&2b8'
SHORT_PASSWORD = "ø§"
ECHO_SECRETS = {"password": PASSWORD, "signing key": SIGNING_KEY, "header": HEADER_SECRET}
SHORT_SECRETS = {"short password": SHORT_PASSWORD}
SECRETS = ECHO_SECRETS | SHORT_SECRETS
PASSWORDS = frozenset({"password", "short password"})
"""Each adaptor knows its own integration's secrets only (an adaptor cannot know another's)."""
EMAIL = "echo.person@example.com"
ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "dashboard" / "app.py")


# -- the forms a secret can take --------------------------------------------------------------


def _b64(text: str) -> set[str]:
    raw = text.encode()
    encoded = {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return encoded | {e.rstrip("=") for e in encoded}


def _go_escaped(json_escaped: str) -> str:
    return (json_escaped.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


def forms(secret: str, password: bool) -> set[str]:
    """The secret as it could appear anywhere: raw, repr, JSON (ASCII or not, and Go's HTML
    escapes), URL-encoded (upper and lower hex, ``+``) and base64 (of a password also as
    ``user:password``, as Basic auth sends it)."""
    ascii_json = json.dumps(secret)[1:-1]
    url = quote(secret, safe="")
    found = {secret, repr(secret)[1:-1], ascii_json, json.dumps(secret, ensure_ascii=False)[1:-1],
             _go_escaped(ascii_json), url, quote_plus(secret),
             re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), url)}
    return found | _b64(secret) | (_b64(f"{USERNAME}:{secret}") if password else set())


FORMS = {name: forms(secret, name in PASSWORDS) for name, secret in SECRETS.items()}


@dataclass
class Scan:
    """Collects every output of the flows and reports each secret form found in one."""

    hits: list[str]

    def check(self, where: str, content: object) -> None:
        data = (content if isinstance(content, bytes)
                else str(content).encode("utf-8", "surrogatepass"))
        for name, variants in FORMS.items():
            for form in variants:
                if form.encode() in data:
                    index = data.index(form.encode())
                    context = data[max(0, index - 60): index + 60]
                    self.hits.append(f"{where}: the {name} as {form!r} in …{context!r}…")


# -- the echoing adaptors ---------------------------------------------------------------------


def _echoes(request: Request, secrets: dict[str, str]) -> dict[str, str]:
    """Every secret the adaptor was sent or knows (its own integration's), in the forms it
    comes back in."""
    sent = {"authorization": request.headers.get("authorization", ""),
            "header": request.headers.get("x-api-secret", ""),
            "signature": request.headers.get("gladly-authorization", "")}
    known = {}
    for name, secret in secrets.items():
        key = name.replace(" ", "_")
        known |= {key: secret, f"{key}_url": quote(secret, safe=""),
                  f"{key}_b64": base64.b64encode(secret.encode()).decode()}
        if name in PASSWORDS:
            known[f"{key}_basic"] = base64.b64encode(f"{USERNAME}:{secret}".encode()).decode()
    return sent | known


async def echo(request: Request) -> Response:
    """A contract answer whose name, attributes, transactions and headers echo the secrets."""
    envelope = json.loads(await request.body())
    echoes = _echoes(request, ECHO_SECRETS)
    record: dict[str, Any] = {
        "externalCustomerId": "echo-1", "name": f"Echo {PASSWORD}", "emails": [EMAIL],
        "phones": [], "address": f"{SIGNING_KEY} street", "customAttributes": echoes}
    if envelope.get("lookupLevel") == "DETAILED":
        record["transactions"] = [{"type": "ORDER", "orderNumber": HEADER_SECRET,
                                   "orderStatus": SIGNING_KEY, "note": PASSWORD}]
    body = json.dumps({"results": [record]}, ensure_ascii=False)
    go_style = _go_escaped(json.dumps(PASSWORD)[1:-1])
    body = body[:-1] + f', "go": "{go_style}", "ascii": {json.dumps(SIGNING_KEY)}}}'
    headers = {"X-Echo-Secret": HEADER_SECRET,
               "X-Echo-Auth": echoes["authorization"], "X-Echo-Basic": echoes["password_basic"]}
    return Response(body.encode(), 200, media_type="application/json", headers=headers)


async def echo_failure(request: Request) -> Response:
    """A 500 whose text body echoes every secret."""
    echoes = _echoes(request, SHORT_SECRETS)
    text = "failed for " + " | ".join(f"{k}={v}" for k, v in echoes.items())
    return Response(text.encode(), 500, media_type="text/plain")


def echo_app() -> Starlette:
    return Starlette(routes=[Route("/lookup", echo, methods=["POST"]),
                             Route("/fail", echo_failure, methods=["POST"])])


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The app's environment (data folder, database, secret key) for services, CLI and
    AppTest alike."""
    folder = tmp_path / "home"
    monkeypatch.setenv("LINKER_HOME", str(folder))
    monkeypatch.setenv("LINKER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LINKER_SECRET_KEY", settings.secret_key or generate_key())
    monkeypatch.delenv("LINKER_DEV_ROLE", raising=False)
    monkeypatch.delenv("LINKER_ENV", raising=False)
    return folder


@pytest.fixture
def server() -> Iterator[str]:
    with BackgroundServer(echo_app()) as running:
        yield running.url


def _spec(name: str, url: str, password: str, **extra: Any) -> IntegrationSpec:
    return IntegrationSpec(
        name=name, url=url, username=USERNAME, password=password,
        search_query_attributes=(AttributeSpec("email", "Email"),),
        search_results_attributes=(AttributeSpec("name", "Name"), AttributeSpec("email", "Email")),
        autolink_enabled=True, autolink_fields=("email",), **extra)


def _pages(scan: Scan, customer_id: str, exchange_id: int) -> None:
    """Render every console page as an admin (the workbench on the echoed profile, the
    debugger's log with an exchange open) and scan every element. The workbench and the
    debugger must show the masked echoes (so the scan saw them)."""
    pages: list[tuple[str, Callable[[AppTest], None], bytes]] = [
        ("workbench.py", lambda at: at.session_state.__setitem__("wb.customer_id", customer_id),
         present.text(f"{MASK} street").encode()),  # the pulled address, Markdown-escaped
        ("debugger.py", lambda at: at.session_state.__setitem__("log.open", exchange_id),
         MASK.encode()),
        ("integrations.py", lambda at: None, b"Echo short"), ("health.py", lambda at: None, b""),
        ("audit.py", lambda at: None, b""), ("coverage.py", lambda at: None, b""),
        ("autolinking.py", lambda at: None, b"")]
    for page, prepare, expected in pages:
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["auth_username"] = "root"
        at.session_state["auth_role"] = "admin"
        prepare(at)
        at.run()
        at.switch_page(f"../pages/{page}").run()
        assert not at.exception, (page, at.exception)
        rendered = b"".join(proto.SerializeToString() for proto in _protos(at._tree))
        assert expected in rendered, f"{page} did not show {expected!r}"
        scan.check(f"page {page}", rendered)


def _protos(node: Any) -> Iterator[Any]:
    proto = getattr(node, "proto", None)
    if proto is not None:
        yield proto
    for child in getattr(node, "children", {}).values():
        yield from _protos(child)


def _database(scan: Scan, svc: Services) -> None:
    metadata = MetaData()
    with svc.ctx.db.engine.connect() as conn:
        metadata.reflect(conn)
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                scan.check(f"table {table.name}", repr(tuple(row)))


def _files(scan: Scan, *folders: Path) -> None:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                scan.check(f"file {path.name}", path.read_bytes())


def test_no_secret_leaks_from_any_flow(home: Path, server: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    scan = Scan([])
    svc = Services.from_settings(Settings.from_env())
    try:
        _run_flows(scan, svc, server, tmp_path, capsys)
        _database(scan, svc)
    finally:
        svc.ctx.db.dispose()
    for record in caplog.records:
        scan.check(f"log {record.name}", record.getMessage() + str(record.args or ""))
        if record.exc_text:
            scan.check(f"log {record.name} traceback", record.exc_text)
    out, err = capsys.readouterr()
    scan.check("stdout", out)
    scan.check("stderr", err)
    _files(scan, home, tmp_path)
    assert not scan.hits, "\n".join(scan.hits)


def _cli(scan: Scan, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    main(list(argv))
    out, err = capsys.readouterr()
    scan.check(f"`linker {' '.join(argv[:2])}` stdout", out)
    scan.check(f"`linker {' '.join(argv[:2])}` stderr", err)
    return out


def _run_flows(scan: Scan, svc: Services, url: str, tmp_path: Path,
               capsys: pytest.CaptureFixture[str]) -> None:
    def seen(where: str, value: object) -> None:
        scan.check(where, repr(value))

    echo = svc.integrations.create(SYSTEM, _spec(
        "Echo", url + "lookup", PASSWORD, signing_key=SIGNING_KEY,
        headers=(HeaderSpec("X-Api-Secret", HEADER_SECRET, secret=True),)))
    short = svc.integrations.create(SYSTEM, _spec("Echo short", url + "fail", SHORT_PASSWORD))
    seen("integrations.list", svc.integrations.list(SYSTEM))
    seen("test connection", svc.integrations.test_connection(SYSTEM, echo.id, email=EMAIL))
    seen("test connection (failing)", svc.integrations.test_connection(SYSTEM, short.id,
                                                                       email=EMAIL))
    created = svc.customers.create(SYSTEM, "Echo Person", [EMAIL])  # auto-links to Echo
    customer = created.customer.id
    seen("customer create", created)
    seen("profile open", svc.profiles.open(SYSTEM, customer))
    seen("search all", svc.linking.search(SYSTEM, customer, integration_ids=None,
                                          fields={"email": EMAIL}))
    svc.linking.unlink(SYSTEM, customer, echo.id)
    seen("link", svc.linking.link(SYSTEM, customer, echo.id, "echo-1"))
    seen("refresh", svc.refresh.refresh(SYSTEM, customer))
    seen("customer get", svc.customers.get(SYSTEM, customer))
    other = CustomerService(svc.ctx).import_csv(SYSTEM, "name,email,phone\nOther,o@example.com,\n")
    seen("backfill", svc.backfill.run(SYSTEM, concurrency=2))
    seen("why", svc.why.explain(SYSTEM, other.created[0], echo.id))
    seen("debugger autolink", svc.debugger.autolink(SYSTEM, customer, echo.id))
    seen("debugger basic", svc.debugger.basic(SYSTEM, customer, echo.id, {"email": EMAIL},
                                              detail_external_id="echo-1"))
    seen("debugger basic (failing)", svc.debugger.basic(SYSTEM, customer, short.id,
                                                        {"email": EMAIL}))
    page = svc.exchange_log.page(SYSTEM)
    seen("exchange log page", page)
    newest = page.rows[0].id
    for row in page.rows:
        seen(f"exchange {row.id}", svc.exchange_log.get(SYSTEM, row.id))
        seen(f"curl {row.id}", svc.exchange_log.curl(SYSTEM, row.id))
    seen("replay", svc.replay.replay(SYSTEM, newest))
    seen("conformance", svc.conformance.run(SYSTEM, echo.id, EMAIL))
    seen("conformance (failing)", svc.conformance.run(SYSTEM, short.id, EMAIL))
    scan.check("exchange export", "\n".join(svc.exchange_log.export_jsonl(SYSTEM)))
    scan.check("audit CSV", svc.audit_log.export_csv(SYSTEM))
    scan.check("coverage CSV", svc.coverage.export_csv(SYSTEM, echo.id))
    seen("reports", (svc.health.overview(SYSTEM), svc.reports.audit_log(SYSTEM)))

    for argv in (["exchanges", "list"], ["exchanges", "show", str(newest)],
                 ["exchanges", "curl", str(newest)], ["exchanges", "export"],
                 ["exchanges", "replay", str(newest), "--json"], ["integrations", "list"],
                 ["integrations", "test", "Echo"], ["coverage", "--json"]):
        _cli(scan, capsys, *argv)
    lookup = ["lookup", url + "lookup", "--basic", "--email", EMAIL, "--username", USERNAME,
              "--password", PASSWORD, "--signing-key", SIGNING_KEY,
              "--header", f"X-Api-Secret: {HEADER_SECRET}", "--secret-header", "X-Api-Secret"]
    _cli(scan, capsys, *lookup)
    _cli(scan, capsys, *lookup, "--json")
    _cli(scan, capsys, "lookup", url + "fail", "--basic", "--email", EMAIL, "--username",
         USERNAME, "--password", SHORT_PASSWORD)
    bad = tmp_path / "bad.toml"  # a mistyped secret (a list) must not be echoed in the error
    bad.write_text(f'[[integration]]\nname = "Echo"\nurl = "{url}lookup"\n'
                   f"password = [{json.dumps(PASSWORD)}]\n", encoding="utf-8")
    _cli(scan, capsys, "integrations", "apply", str(bad))
    bad.unlink()  # the test's own input, not an output
    _pages(scan, customer, newest)
