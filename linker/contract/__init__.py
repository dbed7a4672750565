"""The lookup contract in code: request builders, response models and validation."""

from linker.contract.models import (
    Action,
    CustomerProfile,
    Email,
    LookupLevel,
    LookupRequest,
    Phone,
    RequestKind,
    Transaction,
    TransactionType,
    encode_json,
)
from linker.contract.requests import (
    autolink_request,
    detailed_request,
    request_kind,
    search_request,
)
from linker.contract.validation import Severity, ValidationResult, Violation, validate_response

__all__ = [
    "Action",
    "CustomerProfile",
    "Email",
    "LookupLevel",
    "LookupRequest",
    "Phone",
    "RequestKind",
    "Severity",
    "Transaction",
    "TransactionType",
    "ValidationResult",
    "Violation",
    "autolink_request",
    "detailed_request",
    "encode_json",
    "request_kind",
    "search_request",
    "validate_response",
]
