"""Settings from LINKER_* environment variables, each with a working default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where Linker keeps its data and how it behaves; see ``from_env``."""

    home: Path
    database_url: str
    secret_key: str | None = None
    detailed_ttl_s: int = 300
    exchange_retention_days: int = 30
    production: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings: LINKER_HOME (default ./.linker), LINKER_DATABASE_URL (default SQLite
        file in LINKER_HOME), LINKER_SECRET_KEY, LINKER_DETAILED_TTL_S, LINKER_RETENTION_DAYS,
        LINKER_ENV (``production`` turns off development conveniences)."""
        env = os.environ if env is None else env
        home = Path(env.get("LINKER_HOME", ".linker")).expanduser()
        url = env.get("LINKER_DATABASE_URL") or f"sqlite:///{(home / 'linker.db').resolve()}"
        return cls(
            home=home,
            database_url=url,
            secret_key=env.get("LINKER_SECRET_KEY") or None,
            detailed_ttl_s=int(env.get("LINKER_DETAILED_TTL_S", "300")),
            exchange_retention_days=int(env.get("LINKER_RETENTION_DAYS", "30")),
            production=env.get("LINKER_ENV", "").lower() == "production",
        )
