"""`linker --help` imports no command module; a command imports only its own (issue 7)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

from linker.cli.commands import COMMANDS
from linker.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "alembic", "httpx", "pydantic", "streamlit", "phonenumbers", "uvicorn")


def modules_after(argv: list[str]) -> set[str]:
    """The top-level packages imported by running ``linker ARGV`` in a fresh interpreter."""
    probe = ("import json, sys\nfrom linker.cli.main import main\ntry:\n"
             f"    main({argv!r})\nexcept SystemExit:\n    pass\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), "
             "file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, check=True, env={"PYTHONPATH": str(ROOT)})
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_lists_every_command_without_importing_one() -> None:
    loaded = modules_after(["--help"])
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_a_command_imports_only_what_it_needs() -> None:
    loaded = modules_after(["lookup", "--help"])
    assert "httpx" in loaded  # its own dependency
    assert loaded.isdisjoint({"sqlalchemy", "alembic", "streamlit"})


def test_the_table_names_exactly_what_each_module_registers() -> None:
    for module in dict.fromkeys(c.module for c in COMMANDS.values()):
        subparsers = argparse.ArgumentParser().add_subparsers()
        import_module(module).register(subparsers)
        assert set(subparsers.choices) == {n for n, c in COMMANDS.items() if c.module == module}
    assert build_parser(["--help"]).format_help() == build_parser().format_help()


def _help(parser: argparse.ArgumentParser, argv: list[str],
          capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [["prune", "--help"], ["autolink", "backfill", "--help"],
                                  ["users", "add", "--help"]])
def test_the_named_command_is_registered_in_full(argv: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    shown = _help(build_parser(argv), argv, capsys)
    assert shown == _help(build_parser(), argv, capsys) and "usage: linker " + argv[0] in shown
