"""Contact data of a new profile: the pure checks (lengths, hidden characters, email and phone
normalisation, de-duplication) that turn what was entered into ``ContactData``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from linker.core.errors import LinkerError
from linker.core.identity import InvalidContact, PhoneType, normalize_email, normalize_phone
from linker.safetext import forbidden_character

MAX_NAME = 200
MAX_ADDRESS = 500
MAX_EMAIL = 320
MAX_PHONE = 64


class ContactProblems(LinkerError, ValueError):
    """Contact data that cannot be stored. ``fields`` maps a field (``name``, ``address``,
    ``emails``, ``phones``) to what is wrong with it."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {msg}" for name, msg in self.fields.items()))


@dataclass(frozen=True)
class PhoneInput:
    """A phone as entered: the number in any format and its type (MOBILE by default)."""

    number: str
    type: PhoneType | str = PhoneType.MOBILE


@dataclass(frozen=True)
class ContactData:
    """Validated, de-duplicated contact data of a new profile (emails normalised, E.164)."""

    name: str
    address: str
    emails: tuple[tuple[str, str], ...]
    """(as entered, normalised) pairs; the first is the main email."""
    phones: tuple[tuple[str, str, PhoneType], ...]
    """(as entered, E.164, type) triples."""

    @property
    def unique_values(self) -> list[str]:
        """The values that must not be on another profile: emails and MOBILE phones."""
        return [e for _, e in self.emails] + [
            p for _, p, kind in self.phones if kind is PhoneType.MOBILE]

    def display(self) -> dict[str, Any]:
        """Plain dict for audit events."""
        return {"name": self.name, "address": self.address,
                "emails": [e for _, e in self.emails],
                "phones": [{"number": p, "type": t.value} for _, p, t in self.phones]}


def check_contact(name: str, emails: Sequence[str],
                  phones: Sequence[tuple[str, str] | PhoneInput],
                  address: str = "") -> ContactData:
    """Normalise and check a new profile's data; ContactProblems with a message per field.

    Needs a name, an email or a phone. Duplicates within the input are dropped (first wins).
    """
    problems: dict[str, list[str]] = {}
    clean_name = (name or "").strip()
    clean_address = (address or "").strip()
    if len(clean_name) > MAX_NAME:
        problems.setdefault("name", []).append(f"use at most {MAX_NAME} characters")
    if len(clean_address) > MAX_ADDRESS:
        problems.setdefault("address", []).append(f"use at most {MAX_ADDRESS} characters")
    for key, text in (("name", clean_name), ("address", clean_address)):
        if hidden := forbidden_character(text, multiline=True):
            problems.setdefault(key, []).append(f"it contains {hidden}; remove it")
    clean_emails = _emails(emails, problems)
    clean_phones = _phones(phones, problems)
    if not problems and not (clean_name or clean_emails or clean_phones):
        problems["name"] = ["give a name, an email or a phone"]
    if problems:
        raise ContactProblems({k: "; ".join(v) for k, v in problems.items()})
    return ContactData(
        name=clean_name, address=clean_address,
        emails=tuple((raw, norm) for norm, raw in clean_emails.items()),
        phones=tuple((raw, e164, kind) for e164, (raw, kind) in clean_phones.items()),
    )


def _emails(emails: Sequence[str], problems: dict[str, list[str]]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for raw in emails:
        if raw is None or not str(raw).strip():
            continue
        try:
            email = normalize_email(str(raw))
        except InvalidContact as exc:
            problems.setdefault("emails", []).append(str(exc))
            continue
        if len(email) > MAX_EMAIL:
            problems.setdefault("emails", []).append(f"{raw!r} is longer than {MAX_EMAIL}")
            continue
        clean.setdefault(email, str(raw).strip())
    return clean


def _phones(phones: Sequence[tuple[str, str] | PhoneInput],
            problems: dict[str, list[str]]) -> dict[str, tuple[str, PhoneType]]:
    clean: dict[str, tuple[str, PhoneType]] = {}
    for item in phones:
        number, kind_text = (item.number, item.type) if isinstance(item, PhoneInput) else item
        if number is None or not str(number).strip():
            continue
        kind = phone_type(kind_text)
        if kind is None:
            problems.setdefault("phones", []).append(
                f"{kind_text!r} is not a phone type; use MOBILE, HOME, OFFICE or OTHER")
            continue
        try:
            if len(str(number)) > MAX_PHONE:
                raise InvalidContact(f"{number!r} is too long for a phone number")
            e164 = normalize_phone(str(number))
        except InvalidContact as exc:
            problems.setdefault("phones", []).append(str(exc))
            continue
        clean.setdefault(e164, (str(number).strip(), kind))
    return clean


def phone_type(value: PhoneType | str | None) -> PhoneType | None:
    """``value`` as a PhoneType (empty → MOBILE, any case), or None when it is not one."""
    if isinstance(value, PhoneType):
        return value
    text = (value or "").strip().upper() or PhoneType.MOBILE.value
    try:
        return PhoneType(text)
    except ValueError:
        return None
