"""The auto-link decision of contract section 2.2: a pure function of the profile and the results.

``decide`` never does I/O. It says whether the one result of an auto-link request is the same
person as the profile (``linked`` candidate) or why not, in a sentence a support lead can act on.
Blockers that need the database (suppression, a record already linked elsewhere) are the
service's job; their outcomes (``conflict``, ``suppressed``) live in the same ``Outcome`` enum.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from linker.contract import CustomerProfile
from linker.core.identity import PhoneType, try_normalize_email, try_normalize_phone


class Outcome(StrEnum):
    """The recorded result of one auto-link attempt."""

    LINKED = "linked"
    NO_MATCH = "no_match"
    AMBIGUOUS = "ambiguous"
    NO_FIELD_MATCH = "no_field_match"
    CONFLICT = "conflict"
    SUPPRESSED = "suppressed"
    SKIPPED = "skipped"
    ERROR = "error"


class AutolinkField(StrEnum):
    """The auto-linking fields an integration can enable: the one vocabulary of forms, rules,
    reasons and pages (stored as the value: ``email``, ``mobile``)."""

    EMAIL = "email"
    MOBILE = "mobile"

    @property
    def label(self) -> str:
        """How a form or table names it: ``Email``, ``Mobile phone``."""
        return {"email": "Email", "mobile": "Mobile phone"}[self.value]

    @property
    def needed_value(self) -> str:
        """What a profile needs for it, in a sentence: ``an email``, ``a MOBILE phone``."""
        return {"email": "an email", "mobile": "a MOBILE phone"}[self.value]

    @classmethod
    def needed_values(cls, fields: Collection[str]) -> str:
        """What a profile needs for the known ``fields``, e.g. ``an email or a MOBILE phone``
        (every field when none is known)."""
        known = [f for f in cls if f.value in fields] or list(cls)
        return " or ".join(f.needed_value for f in known)


@dataclass(frozen=True)
class AutolinkDecision:
    """What the rule says about one auto-link answer.

    ``external_customer_id`` is set only for a ``linked`` candidate; ``candidates`` is the number
    of results that came back.
    """

    outcome: Outcome
    reason: str
    external_customer_id: str | None
    candidates: int


def _fields(fields: Collection[str]) -> frozenset[AutolinkField]:
    try:
        return frozenset(AutolinkField(f) for f in fields)
    except ValueError:
        known = ", ".join(f.value for f in AutolinkField)
        raise ValueError(f"unknown auto-linking field in {sorted(fields)!r}; use {known}") from None


def _email_keys(values: Iterable[str]) -> list[str]:
    """The normalised form (``normalize_email``) of each value that is an address."""
    keys = (try_normalize_email(v) for v in values)
    return [k for k in keys if k is not None]


def _returned_emails(result: CustomerProfile) -> list[str]:
    return _email_keys(e.original for e in result.emails)


def _returned_mobiles(result: CustomerProfile) -> list[str]:
    """E.164 of the result's MOBILE phones; unparseable numbers never match, so are left out."""
    mobiles = (try_normalize_phone(p.original) for p in result.phones
               if p.type is PhoneType.MOBILE)
    return [m for m in mobiles if m is not None]


def _returned_non_mobiles(result: CustomerProfile) -> list[tuple[str, PhoneType]]:
    phones = ((try_normalize_phone(p.original), p.type) for p in result.phones
              if p.type is not PhoneType.MOBILE)
    return [(e164, kind) for e164, kind in phones if e164 is not None]


@dataclass(frozen=True)
class _Profile:
    emails: tuple[str, ...]
    mobiles: tuple[str, ...]
    fields: frozenset[AutolinkField]

    @classmethod
    def of(cls, emails: Sequence[str], mobiles: Sequence[str],
           fields: Collection[str]) -> _Profile:
        keys = tuple(dict.fromkeys(_email_keys(emails)))
        e164 = (try_normalize_phone(m) for m in mobiles)
        return cls(keys, tuple(dict.fromkeys(m for m in e164 if m is not None)), _fields(fields))

    def matches(self, result: CustomerProfile) -> list[str]:
        """What of ``result`` equals the profile on the enabled fields, e.g. ``email a@b.c``."""
        found: list[str] = []
        if AutolinkField.EMAIL in self.fields:
            found += [f"email {e}" for e in dict.fromkeys(_returned_emails(result))
                      if e in self.emails]
        if AutolinkField.MOBILE in self.fields:
            found += [f"mobile phone {m}" for m in dict.fromkeys(_returned_mobiles(result))
                      if m in self.mobiles]
        return found

    def compared(self) -> str:
        """The profile values the rule compares, in words."""
        parts = []
        if AutolinkField.EMAIL in self.fields:
            parts.append("emails " + (", ".join(self.emails) or "(none)"))
        if AutolinkField.MOBILE in self.fields:
            parts.append("mobile phones " + (", ".join(self.mobiles) or "(none)"))
        return " and ".join(parts)


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def describe_ambiguity(
    profile_emails: Sequence[str],
    profile_mobiles: Sequence[str],
    fields: Collection[str],
    results: Sequence[CustomerProfile],
) -> str:
    """Which results match the profile on which value, e.g. ``results 7 and 9 share the email x``.

    Used to explain an ``ambiguous`` outcome and to suggest how to resolve it.
    """
    profile = _Profile.of(profile_emails, profile_mobiles, fields)
    holders: dict[str, list[str]] = {}
    for result in results:
        for value in profile.matches(result):
            holders.setdefault(value, []).append(result.external_customer_id)
    shared = [(value, ids) for value, ids in holders.items() if len(ids) > 1]
    if shared:
        return "; ".join(f"results {_join(ids)} share the {value}" for value, ids in shared)
    ids = [r.external_customer_id for r in results]
    return f"results {_join(ids)} came back"


def _no_field_match_reason(profile: _Profile, result: CustomerProfile) -> str:
    returned = []
    if AutolinkField.EMAIL in profile.fields:
        returned.append("emails " + (", ".join(_returned_emails(result)) or "(none)"))
    if AutolinkField.MOBILE in profile.fields:
        returned.append("mobile phones " + (", ".join(_returned_mobiles(result)) or "(none)"))
    reason = (f"1 result came back (record {result.external_customer_id}) but none of its "
              f"{' or '.join(returned)} equals the profile's {profile.compared()}")
    if AutolinkField.MOBILE in profile.fields:
        typed = [f"{e164} is {kind.value}" for e164, kind in _returned_non_mobiles(result)
                 if e164 in profile.mobiles]
        if typed:
            reason += (f"; the record's phone {_join(typed)}, and only MOBILE phones "
                       "auto-link")
    return reason


def decide(
    profile_emails: Sequence[str],
    profile_mobiles: Sequence[str],
    fields: Collection[str],
    results: Sequence[CustomerProfile],
) -> AutolinkDecision:
    """Apply the auto-link rule (contract section 2.2) to the results of one auto-link request.

    ``profile_emails`` are the profile's emails, ``profile_mobiles`` its MOBILE phones (any
    format; compared as E.164), ``fields`` the enabled auto-linking fields (``"email"``,
    ``"mobile"``). Only a single result can link, and only when one of its emails or one of its
    MOBILE phones (E.164) equals the profile's; emails are compared in the one normalised form
    of ``linker.core.identity.normalize_email`` (trimmed, NFKC, lower-case; a value that is not
    an address never matches). A returned HOME,
    OFFICE or OTHER phone never links; an unparseable phone never matches. Raises ValueError for
    an unknown field name.
    """
    profile = _Profile.of(profile_emails, profile_mobiles, fields)
    count = len(results)
    if not profile.fields:
        return AutolinkDecision(Outcome.SKIPPED, "No auto-linking field is enabled for this "
                                "integration, so no auto-link request is sent.", None, count)
    if count == 0:
        return AutolinkDecision(
            Outcome.NO_MATCH,
            f"No result came back for the profile's {profile.compared()}; the external system "
            "has no record of this person.", None, 0)
    if count > 1:
        detail = describe_ambiguity(profile_emails, profile_mobiles, fields, results)
        return AutolinkDecision(
            Outcome.AMBIGUOUS,
            f"{count} results came back; auto-linking needs exactly one ({detail}).", None,
            count)
    result = results[0]
    matched = profile.matches(result)
    if not matched:
        return AutolinkDecision(Outcome.NO_FIELD_MATCH, _no_field_match_reason(profile, result)
                                + ".", None, 1)
    return AutolinkDecision(
        Outcome.LINKED,
        f"1 result came back (record {result.external_customer_id}) and its {_join(matched)} "
        "equals the profile's.", result.external_customer_id, 1)


def rule_sentence(name: str, *, active: bool, enabled: bool, fields: Collection[str]) -> str:
    """The auto-link rule of one integration in one plain sentence, for admins."""
    if not active:
        return (f"{name} is inactive, so nothing is auto-linked to it; reactivate it on the "
                "Integrations page first.")
    if not enabled:
        return f"Auto-linking to {name} is off: profiles are linked to it only by hand."
    if not fields:
        return (f"Auto-linking to {name} is on but no field is chosen, so no request is sent "
                "and every attempt is recorded as skipped; choose email or mobile phone.")
    matches = []
    if AutolinkField.EMAIL in fields:
        matches.append("one of its emails equals one of the profile's emails (ignoring case "
                       "and spaces)")
    if AutolinkField.MOBILE in fields:
        matches.append("one of its MOBILE phones equals one of the profile's mobile phones")
    return (f"When a profile is created, or an unlinked profile is opened, Linker asks {name} "
            f"for that person and links the profile when exactly one record comes back and "
            f"{' or '.join(matches)}, unless the record is already linked to another profile "
            f"or the profile was unlinked from {name} before.")
