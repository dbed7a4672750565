"""Secrets at rest: Fernet encryption with a key from the environment or the data directory.

The key comes from ``LINKER_SECRET_KEY`` (``Settings.secret_key``) or, when that is unset, from
``secret.key`` in ``LINKER_HOME``, generated on first use with mode 0600. ``LINKER_SECRET_KEY``
may list several keys separated by commas to rotate: the first encrypts, all decrypt.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from linker.config import Settings
from linker.core.errors import LinkerError
from linker.store.files import ensure_private_dir

KEY_FILE_NAME = "secret.key"


class SecretKeyError(LinkerError):
    """The secret key is missing, malformed, or not the one the secrets were stored with."""


class InvalidSecretKey(SecretKeyError):
    """A configured key is not a Fernet key."""


class SecretKeyMismatch(SecretKeyError):
    """A stored secret cannot be decrypted with the configured key."""

    def __init__(self) -> None:
        super().__init__("stored secrets were encrypted with another key; "
                         "set LINKER_SECRET_KEY to the original key")


def generate_key() -> str:
    """A new random Fernet key (urlsafe base64 text), suitable for LINKER_SECRET_KEY."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts and decrypts secret strings; the empty string stays empty (nothing to hide)."""

    def __init__(self, key: str, *, source: str = "LINKER_SECRET_KEY") -> None:
        """``key``: one Fernet key, or several separated by commas (the first encrypts);
        ``source`` names where it came from, for error messages."""
        keys = [k.strip() for k in key.split(",") if k.strip()]
        if not keys:
            raise InvalidSecretKey(f"{source} is empty; set it to a key made by "
                                   "linker.store.secretbox.generate_key()")
        self._fernet = MultiFernet([_fernet(k, source) for k in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box for ``settings``: LINKER_SECRET_KEY, else the key file (made if missing)."""
        if settings.secret_key:
            return cls(settings.secret_key)
        path = settings.home / KEY_FILE_NAME
        return cls(load_or_create_key_file(path), source=f"the key file {path}")

    def encrypt(self, plaintext: str) -> str:
        """The token for ``plaintext`` ('' for '')."""
        if plaintext == "":
            return ""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of ``token`` ('' for ''); SecretKeyMismatch if the key is wrong."""
        if token == "":
            return ""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeEncodeError) as exc:
            raise SecretKeyMismatch() from exc


def _fernet(key: str, source: str) -> Fernet:
    try:
        return Fernet(key.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidSecretKey(
            f"{source} is not a Fernet key (32 bytes, urlsafe base64); generate one with "
            "python -c 'from linker.store.secretbox import generate_key; print(generate_key())'"
        ) from exc


def load_or_create_key_file(path: Path) -> str:
    """The key stored in ``path``, creating the file (mode 0600, folder too) if missing.

    Creation is atomic: concurrent first uses agree on one key.
    """
    if path.exists():
        return _read_key(path)
    ensure_private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(generate_key() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text(encoding="ascii").strip()
    if not key:
        raise InvalidSecretKey(f"the key file {path} is empty; delete it only if no secrets "
                               "were stored with it, or restore it from a backup")
    return key
