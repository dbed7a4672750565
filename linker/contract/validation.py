"""Validation of adaptor responses that never throws.

``validate_response`` returns the results it could accept and a list of violations, each with a
JSON path (``results[2].externalCustomerId``), a plain message and a severity. It is lenient where
real adaptors are sloppy (numbers for strings, phones without a type, nested custom attributes:
warnings, value repaired) and strict where linking would break (``results`` not a list, a result
without ``externalCustomerId``: errors, result dropped).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from linker.contract.models import (
    Action,
    CustomerProfile,
    Email,
    Phone,
    RequestKind,
    Transaction,
    TransactionType,
)
from linker.core.identity import PhoneType, parse_phone_type

ROOT = "$"
KNOWN_KEYS = {"externalCustomerId", "name", "address", "emails", "phones", "customAttributes",
              "transactions", "actions"}


class Severity(StrEnum):
    """An error breaks linking; a warning is tolerated and repaired."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Violation:
    """One breach of the contract: where (JSON path), what, and how bad."""

    path: str
    message: str
    severity: Severity = Severity.ERROR

    def as_dict(self) -> dict[str, str]:
        """Plain dict for JSON output."""
        return {"path": self.path, "message": self.message, "severity": self.severity.value}


@dataclass
class ValidationResult:
    """What validation accepted, and every violation it found."""

    results: list[CustomerProfile] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def errors(self) -> list[Violation]:
        """Violations of error severity."""
        return [v for v in self.violations if v.severity is Severity.ERROR]

    @property
    def ok(self) -> bool:
        """True when no violation is an error."""
        return not self.errors


class _Checker:
    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def error(self, path: str, message: str) -> None:
        self.violations.append(Violation(path, message, Severity.ERROR))

    def warn(self, path: str, message: str) -> None:
        self.violations.append(Violation(path, message, Severity.WARNING))

    def string(self, value: Any, path: str, what: str) -> str | None:
        """A string field: numbers and booleans repaired with a warning, others rejected."""
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            self.warn(path, f"{what} should be a string, got a boolean; read as text")
            return "true" if value else "false"
        if isinstance(value, int | float):
            self.warn(path, f"{what} should be a string, got the number {value!r}; read as text")
            return _number_text(value)
        self.error(path, f"{what} should be a string, got {_kind(value)}; ignored")
        return None

    def required(self, value: Any, path: str, what: str, dropped: str) -> str | None:
        """A string that must be present and non-blank; one error (``dropped`` says the effect)."""
        if isinstance(value, dict | list):
            self.error(path, f"{what} should be a string, got {_kind(value)}; {dropped}")
            return None
        text = self.string(value, path, what)
        if text is None:
            if value is None:
                self.error(path, f"{what} is missing; {dropped}")
            return None  # a value of another type was already reported by string()
        if not text.strip():
            self.error(path, f"{what} is empty; {dropped}")
            return None
        return text

    def items(self, value: Any, path: str, what: str) -> list[Any]:
        """A list field: a single object or string accepted as a one-item list (warning)."""
        if value is None:
            return []
        if isinstance(value, list):
            return value
        if isinstance(value, dict | str):
            self.warn(path, f"{what} should be a list; read the single value as a list of one")
            return [value]
        self.error(path, f"{what} should be a list, got {_kind(value)}; ignored")
        return []


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _text(value: Any) -> str:
    """Any JSON value as display text: JSON spelling for literals, compact JSON for containers."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _contacts(c: _Checker, raw: Any, path: str, kind: str, bare: tuple[type, ...],
              bare_note: str) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(path, object, original) of each item of ``raw[kind + "s"]``: a bare value of a
    ``bare`` type is read as the original (``bare_note`` warns); an item that is no object, or
    has no original, is reported and skipped."""
    for i, item in enumerate(c.items(raw, path, f"{kind}s")):
        here = f"{path}[{i}]"
        if isinstance(item, bare) and not isinstance(item, bool):
            c.warn(here, f"{kind} should be an object {bare_note} as original")
            item = {"original": str(item)}
        if not isinstance(item, dict):
            c.error(here, f"{kind} should be an object, got {_kind(item)}; ignored")
            continue
        original = c.required(item.get("original"), f"{here}.original", f"{kind} original",
                              f"{kind} ignored")
        if original is not None:
            yield here, item, original


def _emails(c: _Checker, raw: Any, path: str) -> tuple[Email, ...]:
    return tuple(Email(original=original) for _, _, original in _contacts(
        c, raw, path, "email", (str,), '{"original": ...}; read the string'))


def _phones(c: _Checker, raw: Any, path: str) -> tuple[Phone, ...]:
    phones = []
    for here, item, original in _contacts(c, raw, path, "phone", (str, int),
                                          '{"original", "type"}; read the value'):
        raw_type = item.get("type")
        phone_type = parse_phone_type(raw_type)
        if raw_type is None:
            c.warn(f"{here}.type", "phone has no type; treated as OTHER (only MOBILE auto-links)")
            phone_type = PhoneType.OTHER
        elif phone_type is None:
            c.warn(f"{here}.type", f"unknown phone type {raw_type!r}; treated as OTHER")
            phone_type = PhoneType.OTHER
        elif raw_type != phone_type.value:
            c.warn(f"{here}.type", f"phone type should be upper case {phone_type.value!r}")
        phones.append(Phone(original=original, type=phone_type))
    return tuple(phones)


def _flatten(c: _Checker, value: Any, key: str, path: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for sub_key, sub in value.items():
            _flatten(c, sub, f"{key}.{sub_key}", f"{path}.{sub_key}", out)
    elif isinstance(value, list):
        out[key] = ", ".join(_text(v) for v in value if v is not None)
    else:
        out[key] = _text(value)


def _custom_attributes(c: _Checker, raw: Any, path: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        c.error(path, f"customAttributes should be a flat object, got {_kind(raw)}; ignored")
        return {}
    attributes: dict[str, str] = {}
    for key, value in raw.items():
        here = f"{path}.{key}"
        if isinstance(value, dict | list):
            c.warn(here, "custom attributes must be flat string values; nested value flattened"
                   + (" into dotted keys" if isinstance(value, dict) else " into text"))
            _flatten(c, value, key, here, attributes)
        elif value is None:
            c.warn(here, 'custom attribute is null; send "" to clear a value; read as ""')
            attributes[key] = ""
        else:
            attributes[key] = c.string(value, here, "custom attribute") or ""
    return attributes


def _transactions(c: _Checker, raw: Any, path: str) -> tuple[Transaction, ...]:
    transactions = []
    for i, item in enumerate(c.items(raw, path, "transactions")):
        here = f"{path}[{i}]"
        if not isinstance(item, dict):
            c.error(here, f"transaction should be an object, got {_kind(item)}; ignored")
            continue
        fields = {k: v for k, v in item.items() if k != "type"}
        raw_type = item.get("type")
        if not isinstance(raw_type, str) or not raw_type:
            c.warn(f"{here}.type", "transaction has no type; shown as GENERIC")
            transactions.append(Transaction(type=TransactionType.GENERIC, fields=fields))
            continue
        try:
            known = TransactionType(raw_type.strip().upper())
        except ValueError:
            c.warn(f"{here}.type", f"unknown transaction type {raw_type!r}; shown as GENERIC")
            transactions.append(
                Transaction(type=TransactionType.GENERIC, fields=fields, original_type=raw_type)
            )
            continue
        if raw_type != known.value:
            c.warn(f"{here}.type", f"transaction type should be upper case {known.value!r}")
        transactions.append(Transaction(type=known, fields=fields))
    return tuple(transactions)


def _actions(c: _Checker, raw: Any, path: str) -> tuple[Action, ...]:
    actions = []
    for i, item in enumerate(c.items(raw, path, "actions")):
        here = f"{path}[{i}]"
        if not isinstance(item, dict):
            c.error(
                here, f"action should be an object {{name, formUrl}}, got {_kind(item)}; ignored"
            )
            continue
        name = c.string(item.get("name"), f"{here}.name", "action name")
        form_url = c.string(item.get("formUrl"), f"{here}.formUrl", "action formUrl")
        if not name or not name.strip() or not form_url or not form_url.strip():
            c.error(here, "action needs a 'name' and a 'formUrl'; ignored")
            continue
        actions.append(Action(name=name, formUrl=form_url))
    return tuple(actions)


def _profile(c: _Checker, raw: Any, path: str) -> CustomerProfile | None:
    if not isinstance(raw, dict):
        c.error(path, f"result should be an object, got {_kind(raw)}; ignored")
        return None
    external_id = c.required(raw.get("externalCustomerId"), f"{path}.externalCustomerId",
                             "externalCustomerId", "this result cannot be linked")
    if external_id is None:
        return None
    return CustomerProfile(
        externalCustomerId=external_id,
        name=c.string(raw.get("name"), f"{path}.name", "name"),
        address=c.string(raw.get("address"), f"{path}.address", "address"),
        emails=_emails(c, raw.get("emails"), f"{path}.emails"),
        phones=_phones(c, raw.get("phones"), f"{path}.phones"),
        customAttributes=_custom_attributes(c, raw.get("customAttributes"),
                                            f"{path}.customAttributes"),
        transactions=_transactions(c, raw.get("transactions"), f"{path}.transactions"),
        actions=_actions(c, raw.get("actions"), f"{path}.actions"),
        extra={k: v for k, v in raw.items() if k not in KNOWN_KEYS},
    )


def validate_response(payload: Any, kind: RequestKind | None = None) -> ValidationResult:
    """Check a decoded response body against the contract; never raises.

    With ``kind=RequestKind.DETAILED`` it also requires exactly one result.
    """
    c = _Checker()
    outcome = ValidationResult(violations=c.violations)
    if not isinstance(payload, dict):
        c.error(ROOT, f'response should be an object {{"results": [...]}}, got {_kind(payload)}')
        return outcome
    if "results" not in payload:
        c.error("results", 'response has no "results" list (send {"results": []} for no match)')
        return outcome
    raw_results = payload["results"]
    if raw_results is None:
        c.error("results", 'results is null; send {"results": []} for no match')
        return outcome
    if not isinstance(raw_results, list):
        c.error("results", f"results should be a list, got {_kind(raw_results)}")
        return outcome
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_results):
        try:
            profile = _profile(c, raw, f"results[{i}]")
        except Exception as exc:  # the promise is "never raises": report, drop the result
            c.error(f"results[{i}]", f"result could not be read ({type(exc).__name__}: {exc})")
            continue
        if profile is None:
            continue
        first = seen.setdefault(profile.external_customer_id, i)
        if first != i:
            c.warn(f"results[{i}].externalCustomerId",
                   f"duplicates results[{first}] (same externalCustomerId)")
        outcome.results.append(profile)
    if kind is RequestKind.DETAILED and len(raw_results) != 1:
        c.error("results", f"a DETAILED response must hold exactly one result, got "
                f"{len(raw_results)}; linking fails until the adaptor returns one")
    return outcome
