"""Hostile files and form values: refused with a clear message, or read back safely."""

from __future__ import annotations

import pytest

from linker.adaptor.app import create_app
from linker.adaptor.datasets import load_dataset
from linker.adaptor.faults import parse_fault
from linker.adaptor.server import BackgroundServer
from linker.cli.integrations_cmd import FileProblem, load_specs
from linker.cli.main import main
from linker.core.identity import InvalidContact, normalize_email
from linker.core.permissions import SYSTEM
from linker.safetext import csv_cell, for_terminal
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService
from linker.services.errors import Conflict, InvalidInput
from linker.services.integrations import IntegrationService, IntegrationSpec

HEADER = "name,email,phone,phone_type\n"


def test_csv_value_over_the_field_limit_is_a_clear_error(ctx: ServiceContext) -> None:
    text = HEADER + "Ok,ok@example.com,,\n" + "x" * 200_000 + ",big@example.com,,\n"
    with pytest.raises(InvalidInput) as caught:
        CustomerService(ctx).import_csv(SYSTEM, text)
    assert "line 3: a value is longer than 131,072 characters" in caught.value.fields["file"]


def test_csv_row_cap_refuses_the_file(ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    monkeypatch.setattr("linker.core.csv_rows.MAX_IMPORT_ROWS", 3)
    text = HEADER + "".join(f"P{i},p{i}@example.com,,\n" for i in range(5))
    with pytest.raises(InvalidInput, match="more than 3 rows"):
        CustomerService(ctx).import_csv(SYSTEM, text)


@pytest.mark.parametrize("name,shown", [
    ("Ann\x00Lee", "U+0000"), ("Ann\u202eeeL", "U+202E"), ("Ann\u200bLee", "U+200B"),
])
def test_csv_names_with_nul_or_invisible_characters_are_rejected_by_line(
        ctx: ServiceContext, name: str, shown: str) -> None:
    report = CustomerService(ctx).import_csv(SYSTEM, HEADER + f"{name},ann@example.com,,\n")
    [rejected] = report.rejected
    assert rejected.line == 2 and shown in rejected.reason and "bad name" in rejected.reason
    assert report.created == ()


def test_look_alike_emails_are_one_address_or_refused(ctx: ServiceContext) -> None:
    customers = CustomerService(ctx)
    customers.create(SYSTEM, "Ann", ["ann@example.com"])
    with pytest.raises(Conflict):
        customers.create(SYSTEM, "Ann again", ["ａｎｎ@ｅｘａｍｐｌｅ.ｃｏｍ"])  # full-width
    assert normalize_email("ＡＮＮ@example.com") == "ann@example.com"
    with pytest.raises(InvalidContact, match="U\\+200B"):
        normalize_email("an\u200bn@example.com")
    with pytest.raises(InvalidInput):
        customers.create(SYSTEM, "Ann bidi", ["ann\u202e@example.com"])


@pytest.mark.parametrize("name", ["Shop\x00", "Shop\u202egnp.exe", "Sh\u200dop"])
def test_integration_names_with_hidden_characters_are_refused(ctx: ServiceContext,
                                                              name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        IntegrationService(ctx).create(SYSTEM, IntegrationSpec(name=name,
                                                               url="https://a.example/"))
    assert "U+" in caught.value.fields["name"]


def test_deep_toml_is_a_clear_error() -> None:
    with pytest.raises(FileProblem, match="nested too deeply"):
        load_specs("x = " + "[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("value", ["123456789", '["sekrit-in-a-list"]', "{ v = 'sekrit' }",
                                   "true"])
def test_mistyped_secrets_are_never_echoed(value: str) -> None:
    text = f'[[integration]]\nname = "Shop"\nurl = "https://a.example/"\npassword = {value}\n'
    with pytest.raises(FileProblem) as caught:
        load_specs(text)
    message = str(caught.value)
    assert "password must be a string" in message
    for needle in ("123456789", "sekrit", "True"):
        assert needle not in message


def test_csv_cells_that_spreadsheets_would_run_are_neutralised() -> None:
    for cell in ("=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(cell) == "'" + cell
    assert csv_cell("Ann") == "Ann" and csv_cell("") == ""


def test_terminal_escapes_are_stripped() -> None:
    assert for_terminal("a\x1b[31mred\x1b[0m\x1b]8;;http://x/\x07link\x1b]8;;\x07\x07b\n\tc") == (
        "aredlinkb\n\tc")


def test_linker_lookup_prints_no_terminal_escapes(capsys: pytest.CaptureFixture[str]) -> None:
    record = load_dataset("shop").records[0]
    app = create_app("shop", faults=(parse_fault("terminal-escapes"),))
    with BackgroundServer(app) as server:
        main(["lookup", server.url, "--basic", "--email", record.emails[0]])
    out = capsys.readouterr().out
    assert "Result:" in out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
