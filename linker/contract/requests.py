"""Builders for the three request kinds of contract section 2.1 (keys without a value left out)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from linker.contract.models import LookupLevel, LookupRequest, RequestKind


def _present(query: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in query.items() if v not in (None, "", [], ())}


def autolink_request(
    customer_id: str, name: str | None, emails: Sequence[str], phones: Sequence[str]
) -> LookupRequest:
    """BASIC auto-link request: ``emails``/``phones`` arrays (primary first), ``name``, ``id``."""
    query = _present({"id": customer_id, "name": name, "emails": list(emails),
                      "phones": list(phones)})
    return LookupRequest(lookupLevel=LookupLevel.BASIC, query=query, uniqueMatchRequired=False)


def search_request(customer_id: str | None, fields: Mapping[str, str]) -> LookupRequest:
    """BASIC manual search: each filled search field as a scalar string, plus ``id``."""
    query = _present({k: str(v).strip() for k, v in fields.items() if v is not None})
    if customer_id:
        query["id"] = customer_id
    return LookupRequest(lookupLevel=LookupLevel.BASIC, query=query, uniqueMatchRequired=False)


def detailed_request(
    customer_id: str | None,
    external_customer_id: str,
    name: str | None = None,
    emails: Sequence[str] = (),
    phones: Sequence[str] = (),
    custom_attributes: Mapping[str, str] | None = None,
) -> LookupRequest:
    """DETAILED request for a linked record; custom attributes travel flat as top-level keys."""
    reserved = {"id", "externalCustomerId", "name", "emails", "phones"}
    flat = {k: v for k, v in (custom_attributes or {}).items() if k not in reserved}
    query = _present({**flat, "id": customer_id, "name": name, "emails": list(emails),
                      "phones": list(phones)})
    query["externalCustomerId"] = external_customer_id
    return LookupRequest(lookupLevel=LookupLevel.DETAILED, query=query, uniqueMatchRequired=True)


def request_kind(request: LookupRequest) -> RequestKind:
    """Best guess of which request type an envelope is (for display and replay)."""
    if request.lookup_level is LookupLevel.DETAILED:
        return RequestKind.DETAILED
    if isinstance(request.query.get("emails"), list) or isinstance(
        request.query.get("phones"), list
    ):
        return RequestKind.AUTOLINK
    return RequestKind.SEARCH
