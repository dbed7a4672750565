"""Fault profiles of the reference adaptor: parsing ``name[:arg]`` and applying them.

Faults combine; when the same fault is given twice the last one wins. ``FaultPlan`` answers the
questions the app asks (how long to wait, whether to hang, which status to force) and rewrites
results and bodies for the contract-violating faults.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from linker.contract import encode_json


@dataclass(frozen=True)
class FaultSpec:
    """What a fault takes as argument (None for no argument) and what it does."""

    arg: str | None
    help: str


FAULTS: dict[str, FaultSpec] = {
    "latency": FaultSpec("MS", "add a fixed delay of MS milliseconds"),
    "jitter": FaultSpec("MS", "add a random delay of 0..MS milliseconds"),
    "error-rate": FaultSpec("FRACTION", "answer that share of requests (0..1) with 500 or 503"),
    "status": FaultSpec("CODE", "always answer HTTP CODE (200..599) with a JSON error body"),
    "hang": FaultSpec(None, "never answer (until the client gives up or the server stops)"),
    "hang-rate": FaultSpec("FRACTION", "hang on that share of requests (0..1)"),
    "malformed-json": FaultSpec(None, "200 with a truncated, invalid JSON body"),
    "malformed-rate": FaultSpec("FRACTION",
                                "truncate that share of 200 answers (0..1) to invalid JSON"),
    "html-error": FaultSpec(None, "200 with an HTML 'Internal Server Error' page"),
    "json-as-html": FaultSpec(None, "valid JSON served as text/html"),
    "missing-id": FaultSpec(None, "drop externalCustomerId from results"),
    "nested-attributes": FaultSpec(None, "nest customAttributes under the dataset name"),
    "numeric-values": FaultSpec(None, "numbers instead of strings (ids, points, totals)"),
    "duplicate-results": FaultSpec(None, "every result twice, under a second externalCustomerId"),
    "oversize": FaultSpec("KB", "pad the response body to at least KB kibibytes"),
    "redirect": FaultSpec(None, "answer 302 to /moved"),
    "reject-unknown-keys": FaultSpec(None, "answer 422 to a query key the dataset does not know"),
    "match-anyone": FaultSpec(None, "a BASIC search that finds nobody returns the first record"),
    "deep-json": FaultSpec("DEPTH", "add a member nested DEPTH lists deep to the body"),
    "nul-byte": FaultSpec(None, "a raw NUL byte inside the JSON body (invalid JSON)"),
    "nul-fields": FaultSpec(None, "escaped NULs (\\u0000) in names and custom attributes"),
    "non-utf8": FaultSpec(None, "a Latin-1 byte in the body (not UTF-8, so invalid JSON)"),
    "terminal-escapes": FaultSpec(None, "ANSI escape codes and a bidi override in names"),
    "slow-drip": FaultSpec("MS", "send the 200 body one byte at a time, MS milliseconds apart"),
}

RATE_FAULTS = frozenset({"error-rate", "hang-rate", "malformed-rate"})

KNOWN_QUERY_KEYS = frozenset({"id", "name", "email", "emails", "phone", "phones", "orderNumber",
                              "externalCustomerId"})


@dataclass(frozen=True)
class Fault:
    """One fault: its name and its argument (None for faults without one)."""

    name: str
    arg: float | None = None

    def __str__(self) -> str:
        if self.arg is None:
            return self.name
        value = int(self.arg) if float(self.arg).is_integer() else self.arg
        return f"{self.name}:{value}"


def fault_help() -> str:
    """One line listing every valid fault with its argument, e.g. ``latency:MS, hang, ...``."""
    return ", ".join(name if spec.arg is None else f"{name}:{spec.arg}"
                     for name, spec in FAULTS.items())


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"fault {name!r} needs a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"fault {name!r} needs a finite number, got {text!r}")
    return value


def _check(name: str, value: float) -> None:
    if name in ("latency", "jitter", "slow-drip") and value < 0:
        raise ValueError(f"fault {name!r} needs milliseconds >= 0, got {value:g}")
    if name in RATE_FAULTS and not 0 <= value <= 1:
        raise ValueError(f"fault {name!r} needs a fraction between 0 and 1, got {value:g}")
    if name == "status" and (not value.is_integer() or not 200 <= value <= 599):
        raise ValueError(f"fault 'status' needs an HTTP status code 200..599, got {value:g}")
    if name == "deep-json" and (not value.is_integer() or value < 1):
        raise ValueError(f"fault 'deep-json' needs a whole depth of at least 1, got {value:g}")
    if name == "oversize" and value <= 0:
        raise ValueError(f"fault 'oversize' needs a size in KB above 0, got {value:g}")


def parse_fault(text: str) -> Fault:
    """Parse ``name`` or ``name:arg`` (e.g. ``latency:200``); ValueError lists valid faults."""
    name, sep, raw = text.strip().partition(":")
    name = name.strip().lower()
    spec = FAULTS.get(name)
    if spec is None:
        raise ValueError(f"unknown fault {text.strip()!r}; valid faults: {fault_help()}")
    if spec.arg is None:
        if sep:
            raise ValueError(f"fault {name!r} takes no argument; valid faults: {fault_help()}")
        return Fault(name)
    if not sep or not raw.strip():
        raise ValueError(f"fault {name!r} needs an argument ({name}:{spec.arg}); "
                         f"valid faults: {fault_help()}")
    value = _number(name, raw.strip())
    _check(name, value)
    return Fault(name, value)


# ------------------------------------------------------------------------------ result faults

NUMERIC_TEXT = re.compile(r"^-?[$£€]?\d[\d,]*(\.\d+)?$")
NUMERIC_TRANSACTION_KEYS = frozenset(
    {"orderTotal", "itemCount", "quantity", "unitPrice", "total", "points"})
TRAILING_DIGITS = re.compile(r"^(.*?)(\d+)$")


def _as_number(text: str) -> int | float | str:
    if not NUMERIC_TEXT.match(text.strip()):
        return text
    cleaned = re.sub(r"[$£€,]", "", text.strip())
    return float(cleaned) if "." in cleaned else int(cleaned)


def _numeric_id(value: str) -> int | str:
    match = TRAILING_DIGITS.match(value)
    return int(match.group(2)) if match else value


def _numeric_transaction(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_number(v) if k in NUMERIC_TRANSACTION_KEYS and isinstance(v, str)
                else _numeric_transaction(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numeric_transaction(v) for v in value]
    return value


def numeric_values(result: dict[str, Any]) -> dict[str, Any]:
    """Numbers instead of strings: the id's digits, numeric custom attributes, amounts."""
    out = dict(result)
    if isinstance(out.get("externalCustomerId"), str):
        out["externalCustomerId"] = _numeric_id(out["externalCustomerId"])
    attributes = out.get("customAttributes")
    if isinstance(attributes, dict):
        out["customAttributes"] = {k: _as_number(v) if isinstance(v, str) else v
                                   for k, v in attributes.items()}
    if isinstance(out.get("transactions"), list):
        out["transactions"] = _numeric_transaction(out["transactions"])
    return out


def nested_attributes(result: dict[str, Any], group: str) -> dict[str, Any]:
    """customAttributes nested one level under ``group``: ``{"loyalty": {"tier": "Gold"}}``."""
    out = dict(result)
    if isinstance(out.get("customAttributes"), dict):
        out["customAttributes"] = {group: out["customAttributes"]}
    return out


def missing_id(result: dict[str, Any]) -> dict[str, Any]:
    """The result without its externalCustomerId."""
    return {k: v for k, v in result.items() if k != "externalCustomerId"}


def with_text(result: dict[str, Any], text: str, key: str) -> dict[str, Any]:
    """``text`` inside the result's name and added as custom attribute ``key``."""
    out = dict(result)
    if isinstance(out.get("name"), str):
        name = out["name"]
        out["name"] = name[:1] + text + name[1:]
    attributes = out.get("customAttributes")
    out["customAttributes"] = {**(attributes if isinstance(attributes, dict) else {}),
                               key: f"x{text}y"}
    return out


def twin_id(external_id: str) -> str:
    """A second id for the same person: ``shop-00042`` -> ``shop-900042`` (``x`` -> ``x-dup``)."""
    match = TRAILING_DIGITS.match(external_id)
    if match is None:
        return f"{external_id}-dup"
    return f"{match.group(1)}9{match.group(2)}"


def duplicate_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every result followed by a copy under ``twin_id`` of its externalCustomerId."""
    out = []
    for result in results:
        out.append(result)
        external_id = result.get("externalCustomerId")
        out.append({**result, "externalCustomerId": twin_id(str(external_id))})
    return out


# ---------------------------------------------------------------------------------- the plan


class FaultPlan:
    """The combined effect of a set of faults, as the app applies it."""

    def __init__(self, faults: Sequence[Fault]) -> None:
        self.faults = tuple(faults)
        self._by_name = {fault.name: fault for fault in self.faults}

    def has(self, name: str) -> bool:
        """Whether the fault ``name`` is on."""
        return name in self._by_name

    def arg(self, name: str) -> float | None:
        """The argument of fault ``name``, or None when it is off or takes none."""
        fault = self._by_name.get(name)
        return None if fault is None else fault.arg

    def delay_ms(self, rng: random.Random) -> float:
        """Milliseconds to wait before answering: latency plus a jitter draw."""
        delay = self.arg("latency") or 0.0
        jitter = self.arg("jitter")
        if jitter:
            delay += rng.uniform(0, jitter)
        return delay

    def _draw(self, name: str, rng: random.Random) -> bool:
        rate = self.arg(name)
        return bool(rate) and rng.random() < float(rate or 0)

    def hangs(self, rng: random.Random) -> bool:
        """Whether this request hangs: always under hang, by a draw under hang-rate."""
        return self.has("hang") or self._draw("hang-rate", rng)

    def malformed(self, rng: random.Random) -> bool:
        """Whether this 200 body is cut short: always under malformed-json, by a draw under
        malformed-rate."""
        return self.has("malformed-json") or self._draw("malformed-rate", rng)

    def forced_status(self, rng: random.Random) -> int | None:
        """The error status to answer instead of a lookup (status, then error-rate), or None."""
        status = self.arg("status")
        if status is not None:
            return int(status)
        rate = self.arg("error-rate")
        if rate and rng.random() < rate:
            return rng.choice((500, 503))
        return None

    def transform(self, results: list[dict[str, Any]], group: str) -> list[dict[str, Any]]:
        """Apply the result faults (duplicates, numbers, nesting, missing id) in that order."""
        if self.has("duplicate-results"):
            results = duplicate_results(results)
        if self.has("numeric-values"):
            results = [numeric_values(r) for r in results]
        if self.has("nested-attributes"):
            results = [nested_attributes(r, group) for r in results]
        if self.has("missing-id"):
            results = [missing_id(r) for r in results]
        if self.has("nul-fields"):
            results = [with_text(r, "\x00", "nul") for r in results]
        if self.has("terminal-escapes"):
            results = [with_text(r, "\x1b[31m\x1b]8;;http://evil.example/\x07\u202e", "esc")
                       for r in results]
        return results

    def encode(self, payload: dict[str, Any], truncate: bool | None = None) -> bytes:
        """Encode a response payload, padded (oversize) and then truncated (malformed-json, or
        ``truncate`` when given: the app passes ``malformed(rng)``)."""
        body = encode_json(payload)
        kb = self.arg("oversize")
        if kb is not None:
            target = math.ceil(kb * 1024)
            filler = max(0, target - len(body) - len(',"padding":""'))
            body = encode_json({**payload, "padding": "x" * filler})
        depth = self.arg("deep-json")
        if depth is not None:
            body = body[:-1] + b',"nesting":' + b"[" * int(depth) + b"]" * int(depth) + b"}"
        if self.has("non-utf8"):
            body = body[:-1] + b',"note":"caf\xe9"}'
        if self.has("nul-byte"):
            body = body[:-1] + b',"note":"a\x00b"}'
        cut = self.has("malformed-json") if truncate is None else truncate
        if cut:
            body = body[: max(1, len(body) // 2)]
        return body

    def drip_interval_s(self) -> float | None:
        """Seconds between the bytes of a 200 body under slow-drip, else None."""
        ms = self.arg("slow-drip")
        return None if ms is None else ms / 1000

    def media_type(self) -> str:
        """``text/html`` under json-as-html, else ``application/json``."""
        return "text/html" if self.has("json-as-html") else "application/json"
