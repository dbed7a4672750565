"""Every error Linker raises on purpose shares one root."""

from __future__ import annotations

import pytest

from linker.core.errors import LinkerError
from linker.core.identity import InvalidContact
from linker.lookup.target import InvalidTarget
from linker.services.errors import InvalidInput, NotFound, PermissionDenied, ServiceError
from linker.signing import SignatureError
from linker.store.secretbox import InvalidSecretKey, SecretKeyError


@pytest.mark.parametrize("error", [ServiceError, PermissionDenied, NotFound, InvalidContact,
                                   InvalidTarget, SignatureError, SecretKeyError,
                                   InvalidSecretKey])
def test_every_leaf_error_is_a_linker_error(error: type[Exception]) -> None:
    assert issubclass(error, LinkerError)


def test_permission_denied_is_a_service_error() -> None:
    with pytest.raises(ServiceError):
        raise PermissionDenied("agent may not edit integrations")
    assert not issubclass(InvalidInput, PermissionDenied)


def test_value_errors_stay_value_errors() -> None:
    assert issubclass(InvalidContact, ValueError) and issubclass(InvalidTarget, ValueError)
