"""Typed models of the lookup contract: the request envelope and the customer profile result."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from linker.core.identity import PhoneType


class LookupLevel(StrEnum):
    """The ``lookupLevel`` of a request."""

    BASIC = "BASIC"
    DETAILED = "DETAILED"


class RequestKind(StrEnum):
    """The three request types of contract section 2."""

    AUTOLINK = "autolink"
    SEARCH = "search"
    DETAILED = "detailed"

    @property
    def level(self) -> LookupLevel:
        """BASIC for auto-link and search, DETAILED for detailed."""
        return LookupLevel.DETAILED if self is RequestKind.DETAILED else LookupLevel.BASIC


class TransactionType(StrEnum):
    """Transaction types with a card of their own; anything else is kept as GENERIC."""

    ORDER = "ORDER"
    FLIGHT = "FLIGHT"
    STAY = "STAY"
    SUBSCRIPTION = "SUBSCRIPTION"
    GENERIC = "GENERIC"

    @property
    def label(self) -> str:
        """Default card label of contract section 3.4."""
        return {
            "ORDER": "Orders",
            "FLIGHT": "Reservations",
            "STAY": "Stays",
            "SUBSCRIPTION": "Subscriptions",
            "GENERIC": "Transaction",
        }[self.value]


class LookupRequest(BaseModel):
    """The request envelope: ``{"lookupLevel", "query", "uniqueMatchRequired"}``."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    lookup_level: LookupLevel = Field(alias="lookupLevel")
    query: dict[str, Any]
    unique_match_required: bool = Field(alias="uniqueMatchRequired")

    def body(self) -> bytes:
        """Compact JSON, keys sorted, raw UTF-8 (non-ASCII not escaped): the bytes signed."""
        if not _plain_json(self.query):  # pydantic turns tuples, dates, floats... into JSON
            return encode_json(self.model_dump(by_alias=True, mode="json"))
        return encode_json({"lookupLevel": self.lookup_level.value, "query": self.query,
                            "uniqueMatchRequired": self.unique_match_required})


def _plain_json(value: Any) -> bool:
    """True when ``value`` is made of str, int, bool, None, lists and str-keyed dicts only (what
    pydantic's JSON dump leaves as it is)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            if not all(type(key) is str for key in item):
                return False
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind not in (str, int, bool) and item is not None:
            return False
    return True


_CONTRACT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
"""One encoder for every body (``json.dumps`` with options builds a new one per call)."""


def encode_json(value: Any) -> bytes:
    """Serialise as the contract does: sorted keys, no spaces, raw UTF-8."""
    return _CONTRACT_JSON.encode(value).encode("utf-8")


class Email(BaseModel):
    """One returned email address."""

    model_config = ConfigDict(frozen=True)

    original: str


class Phone(BaseModel):
    """One returned phone; a missing type means OTHER."""

    model_config = ConfigDict(frozen=True)

    original: str
    type: PhoneType = PhoneType.OTHER


class Action(BaseModel):
    """A profile- or order-level action: a name and the URL of its form."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    name: str
    form_url: str = Field(alias="formUrl")


class Transaction(BaseModel):
    """One transaction. ``fields`` holds everything but ``type``, as the adaptor sent it.

    ``original_type`` keeps a type the contract does not know (it is shown as GENERIC).
    """

    model_config = ConfigDict(frozen=True)

    type: TransactionType
    fields: dict[str, Any] = Field(default_factory=dict)
    original_type: str | None = None

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the transaction, or ``default``."""
        return self.fields.get(key, default)

    def to_wire(self) -> dict[str, Any]:
        """The transaction as the contract shapes it."""
        return {"type": self.original_type or self.type.value, **self.fields}


class CustomerProfile(BaseModel):
    """One result of a lookup: the external system's view of a person."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    external_customer_id: str = Field(alias="externalCustomerId")
    name: str | None = None
    address: str | None = None
    emails: tuple[Email, ...] = ()
    phones: tuple[Phone, ...] = ()
    custom_attributes: dict[str, str] = Field(default_factory=dict, alias="customAttributes")
    transactions: tuple[Transaction, ...] = ()
    actions: tuple[Action, ...] = ()
    extra: dict[str, Any] = Field(default_factory=dict)
    """Other top-level keys the adaptor returned (search results attributes read them)."""

    def attribute(self, key: str) -> Any:
        """Value for a search-results column: a profile field, custom attribute or extra key."""
        wire = {
            "externalCustomerId": self.external_customer_id,
            "name": self.name,
            "address": self.address,
            "email": self.emails[0].original if self.emails else None,
            "emails": ", ".join(e.original for e in self.emails) or None,
            "phone": self.phones[0].original if self.phones else None,
            "phones": ", ".join(p.original for p in self.phones) or None,
        }
        if key in wire:
            return wire[key]
        if key in self.custom_attributes:
            return self.custom_attributes[key]
        return self.extra.get(key)
