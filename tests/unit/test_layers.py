"""The dependency rule: no module imports upward (imports parsed with ``ast``, not executed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (package whose modules are checked, forbidden import prefixes)
RULES = [
    ("linker.core", ("linker.store", "linker.lookup", "linker.services", "linker.cli",
                     "sqlalchemy", "httpx", "aiohttp")),
    ("linker", ("streamlit", "dashboard", "pages")),
    ("linker.contract", ("linker.store", "linker.lookup", "linker.services", "linker.cli")),
    ("linker.lookup", ("linker.store", "linker.services", "linker.cli")),
    ("linker.store", ("linker.services", "linker.cli")),
    ("linker.services", ("linker.cli",)),
    ("dashboard", ("pages",)),
]


def module_name(path: Path, root: Path = ROOT) -> str:
    """Dotted name of the module at ``path`` (relative to ``root``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path, root: Path = ROOT) -> list[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
    return names


def violations(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    """``module imports name`` for each forbidden import under ``package``."""
    found = []
    for path in sorted((root / package.replace(".", "/")).rglob("*.py")):
        for name in imported_names(path, root):
            if any(name == bad or name.startswith(bad + ".") for bad in forbidden):
                found.append(f"{module_name(path, root)} imports {name}")
    return found


@pytest.mark.parametrize(("package", "forbidden"), RULES, ids=[rule[0] for rule in RULES])
def test_no_upward_imports(package: str, forbidden: tuple[str, ...]) -> None:
    assert (ROOT / package.replace(".", "/")).is_dir(), f"{package} is missing"
    assert violations(package, forbidden) == []


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    core = tmp_path / "linker" / "core"
    core.mkdir(parents=True)
    (core / "__init__.py").write_text("", encoding="utf-8")
    probe = core / "probe.py"
    probe.write_text("import streamlit\nfrom ..store import database\n", encoding="utf-8")
    names = imported_names(probe, tmp_path)
    assert "streamlit" in names and "linker.store.database" in names
    assert violations("linker.core", ("linker.store",), tmp_path) == [
        "linker.core.probe imports linker.store", "linker.core.probe imports linker.store.database"]


# Services hold no queries: from SQLAlchemy they may name the Session type (for hints) and its
# exceptions, nothing else. Queries live in ``linker/store/<aggregate>.py`` (issue 7).
SERVICE_SQLALCHEMY_ALLOWED = {"sqlalchemy.orm.Session", "sqlalchemy.exc"}
def sqlalchemy_imports(path: Path) -> list[str]:
    """What ``path`` imports from SQLAlchemy beyond ``Session`` and ``sqlalchemy.exc``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [name for name in names
                  if (name == "sqlalchemy" or name.startswith("sqlalchemy."))
                  and name not in SERVICE_SQLALCHEMY_ALLOWED
                  and not name.startswith("sqlalchemy.exc.")]
    return found


def query_imports_in_services(root: Path = ROOT) -> list[str]:
    """``module imports name`` for each SQLAlchemy query import under linker/services."""
    found = []
    for path in sorted((root / "linker" / "services").rglob("*.py")):
        module = module_name(path, root)
        found += [f"{module} imports {name}" for name in sqlalchemy_imports(path)]
    return found


def test_services_import_no_query_building_from_sqlalchemy() -> None:
    assert query_imports_in_services() == []


def test_the_checker_sees_a_query_import_in_a_service(tmp_path: Path) -> None:
    services = tmp_path / "linker" / "services"
    services.mkdir(parents=True)
    (services / "fine.py").write_text(
        "from sqlalchemy.orm import Session\nfrom sqlalchemy.exc import IntegrityError\n"
        "import sqlalchemy.exc\n", encoding="utf-8")
    (services / "probe.py").write_text(
        "from sqlalchemy import select\nfrom sqlalchemy.orm import Session, selectinload\n"
        "import sqlalchemy\n", encoding="utf-8")
    assert query_imports_in_services(tmp_path) == [
        "linker.services.probe imports sqlalchemy.select",
        "linker.services.probe imports sqlalchemy.orm.selectinload",
        "linker.services.probe imports sqlalchemy"]
