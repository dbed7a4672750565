"""The data folder is created 0700 and the SQLite database (and its WAL files) 0600."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from linker.config import Settings
from linker.services.context import ServiceContext
from linker.store.database import Database
from linker.store.files import ensure_private_dir, ensure_private_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_folder_database_and_key_are_private(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / ".linker"
    settings = Settings.from_env({"LINKER_HOME": str(home)})
    ctx = ServiceContext.from_settings(settings)  # creates, migrates, generates the key
    try:
        with ctx.db.session() as s:
            s.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
        created = sorted(p.name for p in home.iterdir())
        assert {"linker.db", "secret.key"} <= set(created)
        assert mode(home) == 0o700
        for name in created:  # linker.db, its -wal and -shm, secret.key
            assert mode(home / name) == 0o600, name
    finally:
        ctx.db.dispose()


def test_an_existing_folder_and_database_keep_their_modes(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    folder.chmod(0o750)
    database = folder / "linker.db"
    database.touch()
    database.chmod(0o640)
    Database(f"sqlite:///{database}").dispose()
    assert (mode(folder), mode(database)) == (0o750, 0o640)


def test_helpers_are_idempotent(tmp_path: Path) -> None:
    target = ensure_private_file(tmp_path / "a" / "b" / "file")
    ensure_private_file(target)
    ensure_private_dir(target.parent)
    assert (mode(target.parent), mode(target)) == (0o700, 0o600)
