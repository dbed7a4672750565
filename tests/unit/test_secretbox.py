"""Secrets at rest: Fernet round trip, the generated key file, and clear errors."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from linker.config import Settings
from linker.store.secretbox import (
    KEY_FILE_NAME,
    InvalidSecretKey,
    SecretBox,
    SecretKeyMismatch,
    generate_key,
)


def settings_for(home: Path, secret_key: str | None = None) -> Settings:
    return Settings(home=home, database_url="sqlite://", secret_key=secret_key)


def test_round_trip_and_ciphertext_hides_the_secret() -> None:
    box = SecretBox(generate_key())
    token = box.encrypt("s3cret-päss")
    assert "s3cret" not in token
    assert token != box.encrypt("s3cret-päss")  # fresh IV each time
    assert box.decrypt(token) == "s3cret-päss"


def test_empty_string_stays_empty() -> None:
    box = SecretBox(generate_key())
    assert box.encrypt("") == ""
    assert box.decrypt("") == ""


def test_key_from_settings_is_used(tmp_path: Path) -> None:
    key = generate_key()
    token = SecretBox(key).encrypt("pw")
    assert SecretBox.from_settings(settings_for(tmp_path, key)).decrypt(token) == "pw"
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    home = tmp_path / "not" / "yet"
    token = SecretBox.from_settings(settings_for(home)).encrypt("pw")
    key_file = home / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_text()
    assert SecretBox.from_settings(settings_for(home)).decrypt(token) == "pw"
    assert key_file.read_text() == content
    assert [p.name for p in home.iterdir()] == [KEY_FILE_NAME]  # no temporary files left


def test_concurrent_first_uses_agree_on_one_key(tmp_path: Path) -> None:
    boxes: list[SecretBox] = []
    barrier = threading.Barrier(8)

    def open_box() -> None:
        barrier.wait(timeout=30)
        boxes.append(SecretBox.from_settings(settings_for(tmp_path)))

    threads = [threading.Thread(target=open_box) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(boxes) == 8
    token = boxes[0].encrypt("pw")
    assert all(box.decrypt(token) == "pw" for box in boxes)


def test_wrong_key_raises_a_clear_error() -> None:
    token = SecretBox(generate_key()).encrypt("pw")
    with pytest.raises(SecretKeyMismatch, match="set LINKER_SECRET_KEY to the original key"):
        SecretBox(generate_key()).decrypt(token)


def test_malformed_key_is_refused_with_how_to_make_one() -> None:
    with pytest.raises(InvalidSecretKey, match=r"LINKER_SECRET_KEY is not a Fernet key.*generate"):
        SecretBox("hunter2")
    with pytest.raises(InvalidSecretKey, match="empty"):
        SecretBox(" , ")


def test_several_keys_rotate_new_first_old_still_decrypts() -> None:
    old, new = generate_key(), generate_key()
    old_token = SecretBox(old).encrypt("pw")
    rotated = SecretBox(f"{new},{old}")
    assert rotated.decrypt(old_token) == "pw"
    assert SecretBox(new).decrypt(rotated.encrypt("pw")) == "pw"
