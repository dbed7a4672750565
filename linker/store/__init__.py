"""Persistence: tables, the database (sessions, migrations), secrets at rest, exchange log."""

from linker.store.database import Database
from linker.store.exchanges import StoredExchange, load_exchange, record_exchange, stored_exchange
from linker.store.retention import prune_exchanges, retention_age
from linker.store.secretbox import SecretBox, SecretKeyError, SecretKeyMismatch

__all__ = [
    "Database",
    "SecretBox",
    "SecretKeyError",
    "SecretKeyMismatch",
    "StoredExchange",
    "load_exchange",
    "prune_exchanges",
    "record_exchange",
    "retention_age",
    "stored_exchange",
]
