"""requirements.lock (what ``make`` installs) agrees with pyproject.toml.

Fails when a dependency is added to or changed in pyproject.toml without ``make lock``: every
runtime and dev requirement (and the packages its extras pull in) must be pinned in the lock
at a version the requirement allows, and every pin must carry hashes.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def pins() -> dict[str, tuple[Version, list[str]]]:
    """Each pinned package: its version and its hashes."""
    found: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            found[current] = (Version(match.group(2)), [])
        elif current and line.strip().startswith("--hash=sha256:"):
            found[current][1].append(line.strip().removeprefix("--hash=").rstrip(" \\"))
        elif not line.startswith(" "):
            current = None
    return found


def requirements() -> list[Requirement]:
    """The runtime and dev requirements of pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in [*project["dependencies"],
                                     *project["optional-dependencies"]["dev"]]]


def test_the_lock_was_made_by_make_lock() -> None:
    assert "#    make lock" in LOCK.read_text(encoding="utf-8")


def test_every_pin_has_hashes() -> None:
    locked = pins()
    assert len(locked) > 20
    assert [name for name, (_, hashes) in locked.items() if not hashes] == []


def test_every_requirement_is_pinned_at_an_allowed_version() -> None:
    locked = pins()
    problems = []
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{requirement} is not in requirements.lock")
        elif not requirement.specifier.contains(locked[name][0], prereleases=True):
            problems.append(f"{requirement} does not allow the locked {locked[name][0]}")
    assert problems == [], "run `make lock`: " + "; ".join(problems)


def test_the_packages_extras_pull_in_are_pinned() -> None:
    locked = pins()
    missing = []
    for requirement in requirements():
        if not requirement.extras:
            continue
        try:
            needs = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing to read the extras from
        for text in needs:
            need = Requirement(text)
            if need.marker is None or not any(
                    need.marker.evaluate({"extra": extra}) for extra in requirement.extras):
                continue
            if canonicalize_name(need.name) not in locked:
                missing.append(f"{need.name} (from {requirement})")
    assert missing == [], "run `make lock`: not pinned: " + ", ".join(missing)
