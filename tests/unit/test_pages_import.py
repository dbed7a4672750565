"""Every page is ``main()`` plus rendering helpers: importing one runs nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import dashboard.auth

PAGES = sorted((Path(__file__).resolve().parents[2] / "pages").glob("*.py"))


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_importing_a_page_renders_nothing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"{path.name} ran its page guard at import")

    monkeypatch.setattr(dashboard.auth, "require", refuse)
    spec = importlib.util.spec_from_file_location(f"page_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.main)
