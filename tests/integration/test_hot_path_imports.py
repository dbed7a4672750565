"""The lookup hot path imports nothing once warm (issue 11).

httpcore runs ``import sniffio`` on every request; when the package was missing, each call was
a failed import that walked ``sys.path`` (a fifth of a backfill's CPU). A finder placed first on
``sys.meta_path`` sees every import that is not already in ``sys.modules``, failed ones
included; after a warm-up lookup, N more lookups (in-process ASGI and over loopback) must not
reach it from the lookup's thread.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

import httpx
import pytest

from linker.adaptor.app import create_app
from linker.adaptor.datasets import load_dataset
from linker.adaptor.server import BackgroundServer
from linker.contract import RequestKind, autolink_request, detailed_request
from linker.lookup import AdaptorTarget, LookupClient, Trigger

SIGNING_KEY = "hot-path-signing-key-0001"
LOOKUPS = 30


class _Recorder(MetaPathFinder):
    """Records the names of imports looked up from one thread (it finds nothing itself)."""

    def __init__(self, thread: int) -> None:
        self.thread = thread
        self.names: list[str] = []

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if threading.get_ident() == self.thread:
            self.names.append(fullname)
        return None


@contextmanager
def recording() -> Iterator[_Recorder]:
    """A recorder first on ``sys.meta_path`` for the calling thread, removed afterwards."""
    recorder = _Recorder(threading.get_ident())
    sys.meta_path.insert(0, recorder)
    try:
        yield recorder
    finally:
        sys.meta_path.remove(recorder)


@contextmanager
def serving(mode: str) -> Iterator[tuple[LookupClient, str]]:
    """A client and the URL of the reference adaptor: in-process ASGI or a loopback server."""
    app = create_app(load_dataset("shop"), signing_key=SIGNING_KEY)
    if mode == "asgi":
        yield LookupClient(transport=httpx.ASGITransport(app=app)), "http://adaptor.test/"
        return
    with BackgroundServer(app) as server:
        yield LookupClient(), server.url


async def _lookups(client: LookupClient, target: AdaptorTarget, count: int,
                   recorder: _Recorder | None) -> None:
    """A warm-up lookup of each kind, then ``count`` of each recorded (shared pool and not)."""
    record = load_dataset("shop").records[0]
    autolink = autolink_request("c-1", "Someone", [record.emails[0]], [])
    detailed = detailed_request("c-1", record.external_customer_id)

    async def round_(http: httpx.AsyncClient | None) -> None:
        for request, kind in ((autolink, RequestKind.AUTOLINK), (detailed, RequestKind.DETAILED)):
            exchange = await client.lookup(target, request, kind=kind, trigger=Trigger.BACKFILL,
                                           client=http)
            assert exchange.error is None, exchange.error

    async with client.http_client() as http:
        await round_(http)
        await round_(None)
        if recorder is not None:
            sys.meta_path.insert(0, recorder)
        try:
            for _ in range(count):
                await round_(http)
            await round_(None)
        finally:
            if recorder is not None:
                sys.meta_path.remove(recorder)


@pytest.mark.parametrize("mode", ["asgi", "loopback"])
def test_warm_lookups_import_nothing(mode: str) -> None:
    recorder = _Recorder(threading.get_ident())
    with serving(mode) as (client, url):
        target = AdaptorTarget(url, name="Shop", signing_key=SIGNING_KEY)
        asyncio.run(_lookups(client, target, LOOKUPS, recorder))
    assert recorder.names == [], f"the lookup hot path imported {sorted(set(recorder.names))}"


def test_the_recorder_sees_a_failed_import() -> None:
    """The check above can fail: with sniffio made unfindable, the per-request
    ``import sniffio`` of httpx's ASGI transport (httpcore's, before lookups went through
    aiohttp) reaches the recorder."""

    class _Hide(MetaPathFinder):
        def find_spec(self, fullname: str, path: Sequence[str] | None,
                      target: ModuleType | None = None) -> ModuleSpec | None:
            if fullname == "sniffio":
                raise ModuleNotFoundError("hidden by the test")
            return None

    saved = sys.modules.pop("sniffio", None)
    hide = _Hide()
    with recording() as recorder:
        sys.meta_path.insert(1, hide)
        try:
            with serving("asgi") as (client, url):
                target = AdaptorTarget(url, name="Shop", signing_key=SIGNING_KEY)
                asyncio.run(_lookups(client, target, 2, None))
        finally:
            sys.meta_path.remove(hide)
            if saved is not None:
                sys.modules["sniffio"] = saved
    assert "sniffio" in recorder.names
