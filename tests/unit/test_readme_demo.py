"""The README's quick start lists what adding an integration for a demo adaptor needs (port,
URL, signing key, Basic credentials), exactly as ``linker.demo`` serves them, so it cannot
drift from the code."""

from __future__ import annotations

from pathlib import Path

from linker.demo import ADAPTOR_HOST, DEMO_ACCOUNTS, DEMO_INTEGRATIONS

README = Path(__file__).resolve().parents[2] / "README.md"
ADAPTOR_HEADER = ["adaptor", "port", "URL", "signing key", "Basic username / password"]


def tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of ``text``: rows of stripped cells, the separator row left out."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= {"-", ":"} for cell in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def adaptor_table() -> list[list[str]]:
    """The README table whose header is ``ADAPTOR_HEADER`` (without the header)."""
    matching = [t for t in tables(README.read_text(encoding="utf-8")) if t[0] == ADAPTOR_HEADER]
    assert len(matching) == 1, f"README.md needs one table headed {ADAPTOR_HEADER}"
    return matching[0][1:]


def test_the_readme_lists_every_demo_adaptors_credentials() -> None:
    rows = {row[0]: row for row in adaptor_table()}
    assert set(rows) == {i.name for i in DEMO_INTEGRATIONS}
    for integration in DEMO_INTEGRATIONS:
        port = integration.default_port
        basic = (f"`{integration.username}` / `{integration.password}`" if integration.username
                 else "none")
        assert rows[integration.name] == [
            integration.name, str(port), f"`http://{ADAPTOR_HOST}:{port}/`",
            f"`{integration.signing_key}`", basic]


def test_the_readme_lists_every_demo_account() -> None:
    accounts = [t for t in tables(README.read_text(encoding="utf-8"))
                if t[0] == ["username", "password", "role"]]
    assert len(accounts) == 1
    assert accounts[0][1:] == [[f"`{a.username}`", f"`{a.password}`", a.role.value]
                               for a in DEMO_ACCOUNTS]
