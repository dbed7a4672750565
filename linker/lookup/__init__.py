"""The adaptor client: build, sign, send, time, cap, parse and validate lookups.

Pure I/O with no persistence: every call returns an ``Exchange`` (success or failure, secrets
masked) and services decide what to store.

    client = LookupClient()
    target = AdaptorTarget("https://adaptor.example/", signing_key="...")
    exchange = client.lookup_sync(target, search_request(None, {"email": "a@b.com"}))
    exchange.ok, exchange.error, exchange.results
"""

from linker.lookup.client import LookupClient, PreparedLookup, correlation_id, trace_id
from linker.lookup.exchange import (
    ErrorKind,
    Exchange,
    ExchangeError,
    RecordedRequest,
    RecordedResponse,
    Trigger,
)
from linker.lookup.fanout import iter_lookups, lookup_many, lookup_many_sync
from linker.lookup.runner import run_sync
from linker.lookup.target import MAX_TIMEOUT_S, AdaptorTarget, InvalidTarget

__all__ = [
    "MAX_TIMEOUT_S",
    "AdaptorTarget",
    "ErrorKind",
    "Exchange",
    "ExchangeError",
    "InvalidTarget",
    "LookupClient",
    "PreparedLookup",
    "RecordedRequest",
    "RecordedResponse",
    "Trigger",
    "correlation_id",
    "iter_lookups",
    "lookup_many",
    "lookup_many_sync",
    "run_sync",
    "trace_id",
]
