"""Settings.from_env: every setting has a working default and a LINKER_* override."""

from __future__ import annotations

from pathlib import Path

import pytest

from linker.config import Settings


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.home == Path(".linker")
    assert settings.database_url == f"sqlite:///{Path('.linker/linker.db').resolve()}"
    assert settings.secret_key is None
    assert settings.detailed_ttl_s == 300
    assert settings.exchange_retention_days == 30
    assert settings.production is False


def test_home_moves_the_default_database(tmp_path: Path) -> None:
    settings = Settings.from_env({"LINKER_HOME": str(tmp_path / "data")})
    assert settings.home == tmp_path / "data"
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'linker.db'}"


def test_every_variable_overrides_its_default(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "LINKER_HOME": str(tmp_path),
        "LINKER_DATABASE_URL": "postgresql+psycopg://u@db/linker",
        "LINKER_SECRET_KEY": "k",
        "LINKER_DETAILED_TTL_S": "60",
        "LINKER_RETENTION_DAYS": "7",
        "LINKER_ENV": "Production",
    })
    assert settings.database_url == "postgresql+psycopg://u@db/linker"
    assert settings.secret_key == "k"
    assert (settings.detailed_ttl_s, settings.exchange_retention_days) == (60, 7)
    assert settings.production is True


def test_empty_values_mean_unset() -> None:
    settings = Settings.from_env({"LINKER_SECRET_KEY": "", "LINKER_DATABASE_URL": ""})
    assert settings.secret_key is None
    assert settings.database_url.startswith("sqlite:///")
    assert Settings.from_env({"LINKER_ENV": "development"}).production is False


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("LINKER_HOME", str(tmp_path))
    monkeypatch.setenv("LINKER_RETENTION_DAYS", "3")
    settings = Settings.from_env()
    assert settings.home == tmp_path and settings.exchange_retention_days == 3
