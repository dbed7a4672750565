"""Shared fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def signing_vectors() -> list[dict[str, Any]]:
    """The request-signing vectors copied from shared/vectors/signing.json."""
    vectors: list[dict[str, Any]] = json.loads((DATA / "signing_vectors.json").read_text())[
        "vectors"
    ]
    return vectors
