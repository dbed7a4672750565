"""Shared fixtures."""

from __future__ import annotations

import json
import os
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last: Playwright's sync API leaves an event loop running in the
    main thread, which would break later tests that call ``asyncio.run``."""
    items.sort(key=lambda item: "tests/e2e/" in item.nodeid.replace("\\", "/"))


# The tests' adaptors listen on loopback; lookups refuse non-public addresses unless allowed
# (tests of the refusal build their own NetworkPolicy). Set before any LookupClient is built.
os.environ.setdefault("LINKER_ALLOW_NETWORKS", "127.0.0.0/8,::1")
