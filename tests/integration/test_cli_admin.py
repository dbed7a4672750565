"""The admin command line (`linker users|integrations|customers`) on SQLite and PostgreSQL,
through ``linker.cli.main.main`` with the environment pointing at the test database."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from linker.cli.main import main
from linker.config import Settings
from linker.core.permissions import SYSTEM, Actor, Role
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService
from linker.services.integrations import IntegrationService
from linker.services.users import UserService
from linker.store.models import Integration

SHOP_PASSWORD = "shop-password-from-env-31"
SIGNING_KEY = "loyalty-signing-key-from-env-77"
API_KEY = "loyalty-api-key-from-env-55"
SECRETS = (SHOP_PASSWORD, SIGNING_KEY, API_KEY)

APPLY_FILE = """
[[integration]]
name = "Shop"
url = "https://shop-adaptor.example.com/lookup"
username = "linker"
password_env = "SHOP_PASSWORD"
search_query_attributes = [{ attribute = "email", label = "Email" },
                           { attribute = "orderNumber", label = "Order Number" }]
search_results_attributes = [{ attribute = "name", label = "Name" }]
autolink = true
autolink_fields = ["email", "mobile"]

[[integration]]
name = "Loyalty"
url = "http://127.0.0.1:8402/"
signing_key_env = "LOYALTY_KEY"
headers = { "X-Tenant" = "eu" }
headers_env = { "X-Api-Key" = "LOYALTY_API_KEY" }
timeout_s = 4
overwrite_existing = true
active = false
"""


class FakeTerminal(io.StringIO):
    """stdin attached to a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path) -> Path:
    """Point the CLI at the test database; stdin is an empty pipe unless a test says else."""
    monkeypatch.setenv("LINKER_HOME", str(tmp_path))
    monkeypatch.setenv("LINKER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LINKER_SECRET_KEY", settings.secret_key or "")
    monkeypatch.setenv("SHOP_PASSWORD", SHOP_PASSWORD)
    monkeypatch.setenv("LOYALTY_KEY", SIGNING_KEY)
    monkeypatch.setenv("LOYALTY_API_KEY", API_KEY)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- users -----------------------------------------------------------------------------------


def test_users_add_reads_the_password_from_stdin(cli_env: Path, ctx: ServiceContext,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a piped password 1\n"))
    code, out, _ = run(capsys, "users", "add", "Ana", "--role", "agent")
    assert (code, out) == (0, "created user ana (agent)\n")
    assert UserService(ctx).authenticate("ana", "a piped password 1") == Actor("ana",
                                                                               Role.AGENT)


def test_users_add_generates_and_prints_a_password_once(cli_env: Path, ctx: ServiceContext,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setattr("sys.stdin", FakeTerminal("ignored because it is a terminal"))
    code, out, _ = run(capsys, "users", "add", "dev", "--role", "developer")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "created user dev (developer)"
    password = lines[1].removeprefix("password: ")
    assert UserService(ctx).authenticate("dev", password) == Actor("dev", Role.DEVELOPER)
    # idempotent: again prints no password; another role is an update
    code, out, _ = run(capsys, "users", "add", "dev", "--role", "developer")
    assert (code, out) == (0, "unchanged user dev (developer)\n")
    code, out, _ = run(capsys, "users", "add", "dev", "--role", "support_lead")
    assert (code, out) == (0, "updated user dev: role\n")
    code, out, _ = run(capsys, "users", "list", "--json")
    assert json.loads(out) == [{"username": "dev", "role": "support_lead", "disabled": False}]


def test_users_add_failures(cli_env: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as info:
        main(["users", "add", "ana", "--role", "overlord"])
    assert info.value.code == 2
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, out, err = run(capsys, "users", "add", "ana", "--role", "agent")
    assert (code, out) == (1, "")
    assert "password: use at least 12 characters" in err


def test_users_disable_enable_and_set_role(cli_env: Path, ctx: ServiceContext,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a piped password 1"))
    run(capsys, "users", "add", "ana", "--role", "agent")
    assert run(capsys, "users", "disable", "ana")[:2] == (0, "user ana is disabled\n")
    assert UserService(ctx).authenticate("ana", "a piped password 1") is None
    assert run(capsys, "users", "enable", "ana")[:2] == (0, "user ana is enabled\n")
    assert run(capsys, "users", "set-role", "ana", "--role", "admin")[:2] == (
        0, "user ana is now admin\n")
    code, out, _ = run(capsys, "users", "list")
    assert code == 0 and "ana" in out and "admin" in out and "enabled" in out
    code, _, err = run(capsys, "users", "disable", "ghost")
    assert code == 1 and "no user named 'ghost'" in err


# -- integrations ----------------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_integrations_apply_is_idempotent_and_prints_changes(
        cli_env: Path, ctx: ServiceContext, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(cli_env, "integrations.toml", APPLY_FILE)
    assert run(capsys, "integrations", "apply", path)[:2] == (
        0, "created Shop\ncreated Loyalty\n")
    assert run(capsys, "integrations", "apply", path)[:2] == (
        0, "unchanged Shop\nunchanged Loyalty\n")
    changed = APPLY_FILE.replace('"http://127.0.0.1:8402/"', '"https://loyalty.example.com/"'
                                 ).replace("timeout_s = 4", "timeout_s = 6")
    assert run(capsys, "integrations", "apply", write(cli_env, "v2.toml", changed))[:2] == (
        0, "unchanged Shop\nupdated Loyalty: url, timeout_s\n")

    service = IntegrationService(ctx)
    shop = service.get_by_name(SYSTEM, "shop")
    assert (shop.username, shop.password_set, shop.autolink_enabled, shop.autolink_fields) == (
        "linker", True, True, ("email", "mobile"))
    assert [(a.attribute, a.label) for a in shop.search_query_attributes] == [
        ("email", "Email"), ("orderNumber", "Order Number")]
    loyalty = service.get_by_name(SYSTEM, "Loyalty")
    assert (loyalty.active, loyalty.overwrite_existing, loyalty.timeout_s,
            loyalty.signing_key_set) == (False, True, 6.0, True)
    assert [(h.name, h.value, h.secret) for h in loyalty.headers] == [
        ("X-Tenant", "eu", False), ("X-Api-Key", None, True)]
    with ctx.db.session(readonly=True) as s:
        rows = repr([tuple(r) for r in s.execute(select(Integration.__table__))])
        stored = s.scalars(select(Integration).order_by(Integration.name_key)).all()
        assert ctx.secrets.decrypt(stored[1].password_enc) == SHOP_PASSWORD
        assert ctx.secrets.decrypt(stored[0].signing_key_enc) == SIGNING_KEY
    for secret in SECRETS:
        assert secret not in rows


def test_integrations_apply_missing_env_var_applies_nothing(
        cli_env: Path, ctx: ServiceContext, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOYALTY_API_KEY")
    code, out, err = run(capsys, "integrations", "apply", write(cli_env, "a.toml", APPLY_FILE))
    assert (code, out) == (1, "")
    assert "LOYALTY_API_KEY" in err and "Loyalty" in err and "is not set" in err
    assert IntegrationService(ctx).list(SYSTEM) == []


@pytest.mark.parametrize(("text", "message"), [
    ("[[integration]]\nname = 'A'\nurl = 'https://a.example/'\ncolour = 'red'\n",
     "unknown key(s) colour"),
    ("[[integration]]\nname = 'A'\n", "url is required"),
    ("[[integration]]\nname = 'A'\nurl = 'https://a.example/'\npassword = 'x'\n"
     "password_env = 'X'\n", "not both"),
    ("[[integration]]\nname = 'A'\nurl = 'https://a.example/'\nautolink = 'yes'\n",
     "autolink must be true or false"),
    ("[[integration]]\nname = 'A'\nurl = 'https://a.example/'\n"
     "[[integration]]\nname = 'a'\nurl = 'https://b.example/'\n", "also used by"),
    ("name = 'A'\n", "unknown top-level key"),
    ("[[integration]\n", "not valid TOML"),
])
def test_integrations_apply_file_problems(cli_env: Path, capsys: pytest.CaptureFixture[str],
                                          text: str, message: str) -> None:
    code, out, err = run(capsys, "integrations", "apply", write(cli_env, "bad.toml", text))
    assert (code, out) == (1, "")
    assert message in err


def test_integrations_apply_reports_invalid_settings_and_applies_the_rest(
        cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = APPLY_FILE.replace("https://shop-adaptor.example.com/lookup",
                              "http://shop-adaptor.example.com/lookup")
    code, out, err = run(capsys, "integrations", "apply", write(cli_env, "a.toml", text))
    assert code == 1
    assert out == "created Loyalty\n"
    assert "Shop: url: use https" in err


def test_integrations_list_never_prints_secrets(cli_env: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "integrations", "apply", write(cli_env, "a.toml", APPLY_FILE))
    code, out, _ = run(capsys, "integrations", "list")
    assert code == 0
    assert "Loyalty" in out and "Shop" in out and "set" in out
    assert "X-Api-Key (secret, set)" in out
    code, json_out, _ = run(capsys, "integrations", "list", "--json")
    listed = {row["name"]: row for row in json.loads(json_out)}
    assert listed["Shop"]["password_set"] is True
    assert listed["Loyalty"]["signing_key_set"] is True
    assert listed["Loyalty"]["headers"][1] == {"name": "X-Api-Key", "value": None,
                                               "secret": True}
    for secret in SECRETS:
        assert secret not in out + json_out


# -- customers -------------------------------------------------------------------------------


def test_customers_import(cli_env: Path, ctx: ServiceContext,
                          capsys: pytest.CaptureFixture[str]) -> None:
    good = write(cli_env, "good.csv", "name,email,phone,phone_type\n"
                                      "Ana,ana@example.com,+14155552671,MOBILE\n")
    code, out, _ = run(capsys, "customers", "import", good)
    assert (code, out) == (0, f"{good}: 1 rows, 1 imported, 0 rejected\n")
    bad = write(cli_env, "bad.csv", "name,email,phone\nBea,bea@example.com,\n"
                                    "Ann,ANA@example.com,\nCid,cid@,\n")
    code, out, _ = run(capsys, "customers", "import", bad)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"{bad}: 3 rows, 1 imported, 2 rejected"
    assert lines[1].startswith("  line 3: ana@example.com is already on the profile of Ana")
    assert lines[2].startswith("  line 4: bad email")
    assert [c.name for c in CustomerService(ctx).find(SYSTEM, name="b")] == ["Bea"]


def test_customers_import_json_and_failures(cli_env: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write(cli_env, "a.csv", "name,email,phone\nAna,ana@example.com,\nBad,x,\n")
    code, out, _ = run(capsys, "customers", "import", path, "--json")
    report = json.loads(out)
    assert code == 1
    assert (report["created"], report["rejected"], len(report["created_ids"])) == (1, 1, 1)
    assert report["rejected_rows"][0]["line"] == 3
    code, out, err = run(capsys, "customers", "import", str(cli_env / "missing.csv"))
    assert (code, out) == (1, "")
    assert "cannot read" in err
    code, _, err = run(capsys, "customers", "import", write(cli_env, "h.csv", "a,b\n1,2\n"))
    assert code == 1 and "header" in err
