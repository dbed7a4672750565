"""What every service needs: the database, the secret box, the lookup client, the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from linker.config import Settings
from linker.lookup.client import LookupClient
from linker.lookup.ratelimit import LocalGate
from linker.store.database import Database
from linker.store.ratelimit import DatabaseGate
from linker.store.secretbox import SecretBox


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ServiceContext:
    """Shared dependencies of the services; build one with ``ServiceContext.from_settings``."""

    settings: Settings
    db: Database
    secrets: SecretBox
    client: LookupClient = field(default_factory=LookupClient)
    now: Callable[[], datetime] = _utcnow

    def __post_init__(self) -> None:
        """On PostgreSQL the client's rate caps hold across every process (``DatabaseGate``);
        on SQLite, one process, its own ``LocalGate`` holds them."""
        if not self.db.is_sqlite and isinstance(self.client.gate, LocalGate):
            self.client.gate = DatabaseGate(self.db)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ServiceContext:
        """Open (and migrate) the configured database and load or create the secret key."""
        settings = settings or Settings.from_env()
        db = Database(settings.database_url)
        db.upgrade()
        return cls(settings=settings, db=db, secrets=SecretBox.from_settings(settings))
