"""Before creating a profile: existing customers the new one looks like (same email, same phone,
or, when the new profile has no contact data, the same name), so the workbench can ask first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from linker.core.permissions import Actor, Permission
from linker.services.customers import CustomerService, CustomerSummary
from linker.services.errors import InvalidInput

MAX_LOOKALIKES = 5
NAME_CANDIDATES = 200
"""How many profiles containing the name's longest word are compared with the name."""


@dataclass(frozen=True)
class LookAlike:
    """An existing customer a new profile resembles, and why (``same email a@b.c``)."""

    customer: CustomerSummary
    reason: str


def find_lookalikes(customers: CustomerService, actor: Actor, name: str,
                    emails: Sequence[str] = (), phones: Sequence[str] = ()
                    ) -> list[LookAlike]:
    """Existing profiles sharing an email (normalised) or a phone (E.164, any type) with the
    new one; with no email or phone given, the profiles of exactly the same name (ignoring
    case and surrounding spaces). At most ``MAX_LOOKALIKES``, each once, contact matches
    first. Values that are not a valid email or phone are skipped: creating reports them."""
    actor.require(Permission.EDIT_CUSTOMERS, "create customers")
    found: dict[str, LookAlike] = {}

    def add(matches: Sequence[CustomerSummary], reason: str) -> None:
        for summary in matches:
            found.setdefault(summary.id, LookAlike(summary, reason))

    contacts = [(field, value.strip()) for field, values in (("email", emails), ("phone", phones))
                for value in values if value.strip()]
    for field, value in contacts:
        try:
            add(customers.find(actor, **{field: value}, limit=MAX_LOOKALIKES),
                f"same {field} {value}")
        except InvalidInput:
            continue
    wanted = " ".join(name.split()).casefold()
    if not found and wanted and not contacts:
        longest_word = max(wanted.split(), key=len)  # found whatever the spacing in between
        same_name = [s for s in customers.find(actor, name=longest_word, limit=NAME_CANDIDATES)
                     if " ".join(s.name.split()).casefold() == wanted]
        add(same_name, "same name, and the new profile has no email or phone")
    return list(found.values())[:MAX_LOOKALIKES]
