"""Which search results describe the same person (the workbench's grouped result list)."""

from __future__ import annotations

from collections.abc import Sequence

from linker.contract import CustomerProfile
from linker.core.merge import contact_keys


def _squash(value: str | None) -> str:
    return " ".join((value or "").casefold().split())


def _identity(result: CustomerProfile) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """A result's normalised emails, E.164 MOBILE phones and name+address key (0 or 1)."""
    keys = contact_keys(result)
    name, address = _squash(result.name), _squash(result.address)
    place = {f"{name}|{address}"} if name and address else set()
    return keys.emails, keys.mobiles, frozenset(place)


def group_hits(hits: Sequence[tuple[int, CustomerProfile]]) -> list[list[int]]:
    """Group ``(integration id, result)`` pairs that describe the same person: first by a
    shared email, then by a shared MOBILE phone, then by the same name and address; two results
    of the same integration are never put in one group. Returns index groups in order of first
    appearance."""
    parent = list(range(len(hits)))
    systems = [{integration_id} for integration_id, _ in hits]
    keys = [_identity(result) for _, result in hits]

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for rule in range(3):
        for i in range(len(hits)):
            for j in range(i + 1, len(hits)):
                a, b = root(i), root(j)
                if a == b or systems[a] & systems[b] or not keys[i][rule] & keys[j][rule]:
                    continue
                first, second = min(a, b), max(a, b)
                parent[second] = first
                systems[first] |= systems[second]
    groups: dict[int, list[int]] = {}
    for i in range(len(hits)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())
