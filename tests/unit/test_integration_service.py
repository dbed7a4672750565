"""IntegrationService with an in-memory repository and session: the use case's own rules
(secrets encrypted and kept, names unique, audit without secrets), no database.

The fakes stand in for ``linker.store.integrations`` and the database session, as in
cosmicpython's ``tests/unit/test_handlers.py``; the same use cases run against SQLite and
PostgreSQL in tests/integration/test_integrations.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from linker.config import Settings
from linker.core.errors import InvalidInput, NotFound
from linker.core.integration_config import IntegrationSpec, SecretChange
from linker.core.permissions import SYSTEM
from linker.services.context import ServiceContext
from linker.services.integrations import IntegrationService
from linker.store import integrations as real_store
from linker.store.integrations import Dependents
from linker.store.models import AuditEvent, Integration
from linker.store.secretbox import SecretBox, generate_key

PASSWORD = "s3cret-password-for-fakes"


@dataclass
class FakeSession:
    """Collects what a use case adds; gives new integrations an id on flush."""

    added: list[Any] = field(default_factory=list)
    next_id: int = 1

    def add(self, row: Any) -> None:
        self.added.append(row)

    def flush(self) -> None:
        for row in self.added:
            if isinstance(row, Integration) and row.id is None:
                row.id, self.next_id = self.next_id, self.next_id + 1


@dataclass
class FakeDatabase:
    session_: FakeSession = field(default_factory=FakeSession)
    is_sqlite: bool = True  # one process: the context keeps the client's in-process gate

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[FakeSession]:
        yield self.session_


@dataclass
class FakeStore:
    """An in-memory ``linker.store.integrations``: the rows the session was given."""

    db: FakeDatabase
    deleted: list[int] = field(default_factory=list)

    def rows(self) -> list[Integration]:
        return [r for r in self.db.session_.added
                if isinstance(r, Integration) and r.id not in self.deleted]

    name_key = staticmethod(real_store.name_key)
    config_of = staticmethod(real_store.config_of)
    add = staticmethod(real_store.add)
    save_config = staticmethod(real_store.save_config)
    set_autolink = staticmethod(real_store.set_autolink)
    set_active = staticmethod(real_store.set_active)

    def load(self, s: Any, integration_id: int) -> Integration:
        found = [r for r in self.rows() if r.id == integration_id]
        if not found:
            raise NotFound(f"no integration with id {integration_id}")
        return found[0]

    def load_by_name(self, s: Any, name: str) -> Integration:
        return self.load(s, self.id_named(s, name) or -1)

    def id_named(self, s: Any, name: str) -> int | None:
        return next((r.id for r in self.rows() if r.name_key == self.name_key(name)), None)

    def ids_named(self, s: Any, names: Sequence[str]) -> dict[str, int]:
        keys = {self.name_key(n) for n in names}
        return {r.name_key: r.id for r in self.rows() if r.name_key in keys}

    def all_by_name(self, s: Any) -> list[Integration]:
        return sorted(self.rows(), key=lambda r: r.name_key)

    def dependents(self, s: Any, integration_id: int) -> Dependents:
        return Dependents(profiles_with_data=2, links=3, suppressions=0, outcomes=1)

    def drop_pulled_data(self, s: Any, integration_id: int) -> None:
        pass

    def delete_with_dependents(self, s: Any, integration: Integration) -> None:
        self.deleted.append(integration.id)


@pytest.fixture
def fakes(tmp_path: Path) -> tuple[IntegrationService, FakeStore]:
    box = SecretBox(generate_key())
    db = FakeDatabase()
    ctx = ServiceContext(settings=Settings(home=tmp_path, database_url="sqlite://"),
                         db=db, secrets=box,  # type: ignore[arg-type]
                         now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    store = FakeStore(db)
    return IntegrationService(ctx, store=store), store  # type: ignore[arg-type]


def audits(store: FakeStore) -> list[AuditEvent]:
    return [r for r in store.db.session_.added if isinstance(r, AuditEvent)]


def test_create_encrypts_the_password_and_audits_without_it(fakes: Any) -> None:
    service, store = fakes
    view = service.create(SYSTEM, IntegrationSpec(name="Shop", url="https://shop.example/",
                                                  password=PASSWORD))
    [row] = store.rows()
    assert view.password_set and row.password_enc and PASSWORD not in row.password_enc
    assert service.ctx.secrets.decrypt(row.password_enc) == PASSWORD
    [event] = audits(store)
    assert event.action == "integration.created" and PASSWORD not in repr(event.after)


def test_a_name_taken_ignoring_case_is_refused(fakes: Any) -> None:
    service, _ = fakes
    service.create(SYSTEM, IntegrationSpec(name="Shop", url="https://shop.example/"))
    with pytest.raises(InvalidInput) as info:
        service.create(SYSTEM, IntegrationSpec(name=" shop ", url="https://shop.example/"))
    assert "already exists" in info.value.fields["name"]


def test_a_full_spec_update_keeps_replaces_or_removes_the_secret(fakes: Any) -> None:
    service, store = fakes
    view = service.create(SYSTEM, IntegrationSpec(name="Shop", url="https://shop.example/",
                                                  password=PASSWORD))
    spec = IntegrationSpec(name="Shop", url="https://shop.example/v2",
                           password=SecretChange.keep())
    assert service.update(SYSTEM, view.id, spec).url == "https://shop.example/v2"
    [row] = store.rows()

    def password() -> str:
        return real_store.config_of(row, service.ctx.secrets).password

    assert password() == PASSWORD
    service.update(SYSTEM, view.id, IntegrationSpec(name="Shop", url="https://shop.example/v2",
                                                    password=SecretChange.replace("new-one")))
    assert password() == "new-one"
    assert audits(store)[-1].after == {"password_set": "replaced"}
    removed = service.update(SYSTEM, view.id, IntegrationSpec(
        name="Shop", url="https://shop.example/v2", password=SecretChange.remove()))
    assert password() == "" and not removed.password_set


def test_unknown_names_are_named_and_delete_reports_what_it_removed(fakes: Any) -> None:
    service, store = fakes
    shop = service.create(SYSTEM, IntegrationSpec(name="Shop", url="https://shop.example/"))
    assert service.ids_named(SYSTEM, ["SHOP"]) == [shop.id]
    with pytest.raises(NotFound, match="'Travel'"):
        service.ids_named(SYSTEM, ["shop", "Travel"])
    impact = service.delete(SYSTEM, shop.id)
    assert (impact.links, impact.profiles_with_data) == (3, 2)
    assert store.rows() == [] and audits(store)[-1].action == "integration.deleted"
