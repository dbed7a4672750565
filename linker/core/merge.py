"""What one DETAILED result changes on a profile: the data behaviour of contract section 4.

Pure functions, no I/O. The refresh service gathers the inputs (the profile's own values, the
pulled data kept for the integration, which emails and MOBILE phones other profiles hold),
calls ``merge_detailed`` and applies the ``MergeResult`` it gets back.

The rules:

- custom attributes: the returned ones are merged over the previously pulled ones (a key the
  adaptor omits keeps its old value), then every key whose value is ``""`` is dropped (an empty
  string clears a value);
- transactions are replaced by the returned ones;
- name and address: the returned value becomes the profile's when the integration's
  "overwrite existing values" is on or the profile's own value is blank; an omitted value
  changes nothing, and ``""`` only clears the profile's value when overwriting is on;
- emails and phones are only ever added (normalised; an existing phone's type never changes);
  an email or MOBILE phone another profile already holds is dropped and reported, and so is a
  value that is not a valid email address or phone number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from linker.contract import CustomerProfile
from linker.core.identity import PhoneType, try_normalize_email, try_normalize_phone


@dataclass(frozen=True)
class ProfilePhone:
    """A phone the profile already has: its E.164 value and type."""

    e164: str
    type: PhoneType


@dataclass(frozen=True)
class ProfileValues:
    """The profile's own values a refresh may change."""

    name: str
    address: str
    emails: frozenset[str]
    """Normalised (trimmed, lower-case) emails."""
    phones: tuple[ProfilePhone, ...]


@dataclass(frozen=True)
class NewEmail:
    """An email to add to the profile."""

    original: str
    normalized: str


@dataclass(frozen=True)
class NewPhone:
    """A phone to add to the profile."""

    original: str
    e164: str
    type: PhoneType


@dataclass(frozen=True)
class DroppedContact:
    """A returned email or phone that was not added, and why (shown on the profile)."""

    value: str
    kind: str
    """``email`` or ``phone``."""
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The JSON form stored in ``PulledData.dropped``."""
        return {"value": self.value, "kind": self.kind, "reason": self.reason}


@dataclass(frozen=True)
class MergeResult:
    """Everything one DETAILED result changes: on the profile and in the pulled data."""

    name: str | None
    """The profile's new name, or None to leave it unchanged."""
    address: str | None
    """The profile's new address, or None to leave it unchanged."""
    add_emails: tuple[NewEmail, ...]
    add_phones: tuple[NewPhone, ...]
    dropped: tuple[DroppedContact, ...]
    custom_attributes: dict[str, str] = field(default_factory=dict)
    """The pulled custom attributes after the merge (no ``""`` values)."""
    transactions: list[dict[str, Any]] = field(default_factory=list)
    """The pulled transactions, in their contract (wire) shape."""
    pulled_name: str | None = None
    pulled_address: str | None = None


@dataclass(frozen=True)
class ContactKeys:
    """The normalised emails and MOBILE phones of a result (to ask who else holds them)."""

    emails: frozenset[str]
    mobiles: frozenset[str]


def contact_keys(result: CustomerProfile) -> ContactKeys:
    """The normalised emails and E.164 MOBILE phones a result carries (invalid ones skipped)."""
    emails = {e for e in (try_normalize_email(x.original) for x in result.emails) if e}
    mobiles = {p for p in (try_normalize_phone(x.original) for x in result.phones
                           if x.type is PhoneType.MOBILE) if p}
    return ContactKeys(frozenset(emails), frozenset(mobiles))


def merge_custom_attributes(old: Mapping[str, str], returned: Mapping[str, str]
                            ) -> dict[str, str]:
    """Returned values over the old ones (omitted keys kept), then ``""`` values cleared."""
    merged = {**old, **returned}
    return {key: value for key, value in merged.items() if value != ""}


def _own_value(current: str, returned: str | None, overwrite: bool) -> str | None:
    """The profile's new name/address, or None when it stays as it is."""
    if returned is None:
        return None
    value = returned.strip()
    if overwrite or not current.strip():
        if value == current or (not value and not overwrite):
            return None
        return value
    return None


def describe_profile(name: str, customer_id: str) -> str:
    """How a message names a profile: ``Ada Lovelace (id c1)``."""
    return f"{name.strip() or 'an unnamed profile'} (id {customer_id})"


def _holder_reason(what: str, holder: str) -> str:
    return f"{what} already belongs to {holder}; it was not added to this profile"


def _merge_emails(result: CustomerProfile, own: frozenset[str],
                  held: Mapping[str, str]) -> tuple[list[NewEmail], list[DroppedContact]]:
    added: list[NewEmail] = []
    dropped: list[DroppedContact] = []
    seen = set(own)
    for email in result.emails:
        normalized = try_normalize_email(email.original)
        if normalized is None:
            dropped.append(DroppedContact(email.original, "email",
                                          "not a valid email address; it was not added"))
            continue
        if normalized in seen:
            continue
        seen.add(normalized)
        if normalized in held:
            dropped.append(DroppedContact(email.original, "email",
                                          _holder_reason("this email", held[normalized])))
            continue
        added.append(NewEmail(email.original.strip(), normalized))
    return added, dropped


def _merge_phones(result: CustomerProfile, own: Sequence[ProfilePhone],
                  held: Mapping[str, str]) -> tuple[list[NewPhone], list[DroppedContact]]:
    added: list[NewPhone] = []
    dropped: list[DroppedContact] = []
    seen = {p.e164 for p in own}
    for phone in result.phones:
        e164 = try_normalize_phone(phone.original)
        if e164 is None:
            dropped.append(DroppedContact(phone.original, "phone",
                                          "not a valid phone number; it was not added"))
            continue
        if e164 in seen:  # already on the profile: its type never changes
            continue
        seen.add(e164)
        if phone.type is PhoneType.MOBILE and e164 in held:
            dropped.append(DroppedContact(phone.original, "phone",
                                          _holder_reason("this mobile number", held[e164])))
            continue
        added.append(NewPhone(phone.original.strip(), e164, phone.type))
    return added, dropped


def merge_detailed(
    profile: ProfileValues,
    old_custom_attributes: Mapping[str, str],
    result: CustomerProfile,
    *,
    overwrite_existing: bool,
    emails_held_elsewhere: Mapping[str, str],
    mobiles_held_elsewhere: Mapping[str, str],
) -> MergeResult:
    """Decide what ``result`` (the one DETAILED result) changes; see the module docstring.

    ``emails_held_elsewhere`` / ``mobiles_held_elsewhere`` map a normalised email / E.164
    MOBILE number held by ANOTHER profile to a description of that profile (shown in the
    reason it was dropped).
    """
    emails, dropped_emails = _merge_emails(result, profile.emails, emails_held_elsewhere)
    phones, dropped_phones = _merge_phones(result, profile.phones, mobiles_held_elsewhere)
    return MergeResult(
        name=_own_value(profile.name, result.name, overwrite_existing),
        address=_own_value(profile.address, result.address, overwrite_existing),
        add_emails=tuple(emails),
        add_phones=tuple(phones),
        dropped=tuple(dropped_emails + dropped_phones),
        custom_attributes=merge_custom_attributes(old_custom_attributes,
                                                  result.custom_attributes),
        transactions=[t.to_wire() for t in result.transactions],
        pulled_name=result.name or None,
        pulled_address=result.address or None,
    )
