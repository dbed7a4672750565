"""Files of the data folder: the folder is created 0700, the SQLite database 0600.

The data folder holds the database and the secret key; nobody but the owner should list or
read it. Existing folders and files keep the mode they have (an operator may have chosen it).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) when missing; the folder itself gets mode 0700."""
    path = path.expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # created concurrently: keep it
            path.mkdir(mode=PRIVATE_DIR_MODE)
            os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def ensure_private_file(path: Path) -> Path:
    """Create an empty ``path`` with mode 0600 when missing (its folder via
    ``ensure_private_dir``), so a file another library opens later is never world-readable."""
    path = path.expanduser()
    ensure_private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    return path
