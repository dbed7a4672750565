"""The in-process world of the linking tests: reference adaptors routed by Host, helpers to add
integrations, customers and hand-made records. The ``world`` fixture is in conftest.py."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from linker.adaptor import Dataset, Record, create_app, load_dataset, parse_fault
from linker.core.permissions import Actor, Role
from linker.lookup import LookupClient
from linker.services.context import ServiceContext
from linker.services.linking import create_link
from linker.store.models import (
    AuditEvent,
    Customer,
    CustomerEmail,
    CustomerPhone,
    ExchangeRecord,
    Integration,
    Link,
    PulledData,
)

AGENT = Actor("alice", Role.AGENT)
SIGNING_KEY = "linking-tests-signing-key"
SHOP_QUERY = [{"attribute": "email", "label": "Email"}, {"attribute": "phone", "label": "Phone"},
              {"attribute": "orderNumber", "label": "Order Number"}]
SHOP_RESULTS = [{"attribute": "name", "label": "Name"}, {"attribute": "email", "label": "Email"},
                {"attribute": "phone", "label": "Phone"}]
LOYALTY_QUERY = [{"attribute": "email", "label": "Email"}, {"attribute": "phone", "label": "Phone"}]
LOYALTY_RESULTS = [{"attribute": "name", "label": "Name"}, {"attribute": "tier", "label": "Tier"}]
TRAVEL_QUERY = [{"attribute": "phone", "label": "Mobile phone"}]




class HostRouter:
    """An ASGI app passing each request to the app registered for its Host; counts calls."""

    def __init__(self) -> None:
        self.apps: dict[str, Any] = {}
        self.calls: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1").split(":")[0]
        self.calls[host] += 1
        app = self.apps.get(host)
        if app is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"no such adaptor"})
            return
        await app(scope, receive, send)


@dataclass
class World:
    """A test database with integrations served by in-process reference adaptors."""

    ctx: ServiceContext
    router: HostRouter
    _ids: Iterator[int]

    def add_integration(self, name: str, dataset: str | Dataset, *, faults: Sequence[str] = (),
                        query: list[dict[str, str]] | None = None,
                        results: list[dict[str, str]] | None = None,
                        overwrite: bool = False, active: bool = True,
                        autolink_fields: Sequence[str] = (), timeout_s: float = 5.0) -> int:
        """Register an adaptor app under ``<name>.test`` and store its integration."""
        host = f"{name.lower()}.test"
        self.serve(name, dataset, *faults)
        with self.ctx.db.session() as s:
            integration = Integration(
                name=name, name_key=name.lower(), url=f"http://{host}/lookup",
                signing_key_enc=self.ctx.secrets.encrypt(SIGNING_KEY),
                search_query_attributes=query if query is not None else SHOP_QUERY,
                search_results_attributes=results if results is not None else SHOP_RESULTS,
                overwrite_existing=overwrite, active=active,
                autolink_enabled=bool(autolink_fields), autolink_fields=list(autolink_fields),
                headers=[], timeout_s=timeout_s)
            s.add(integration)
            s.flush()
            return integration.id

    def serve(self, name: str, dataset: str | Dataset, *faults: str) -> None:
        """(Re)place the adaptor app behind an integration."""
        self.router.apps[f"{name.lower()}.test"] = create_app(
            dataset, signing_key=SIGNING_KEY, faults=tuple(parse_fault(f) for f in faults))

    def calls(self, name: str) -> int:
        """How many requests the integration's adaptor received."""
        return self.router.calls[f"{name.lower()}.test"]

    def add_customer(self, name: str, emails: Sequence[str] = (),
                     phones: Sequence[tuple[str, str]] = (), address: str = "",
                     custom_attributes: dict[str, str] | None = None) -> str:
        """Store a profile; ``phones`` are ``(E.164, type)`` pairs."""
        customer_id = f"c{next(self._ids)}"
        with self.ctx.db.session() as s:
            s.add(Customer(id=customer_id, name=name, address=address,
                           custom_attributes=custom_attributes or {}))
            s.flush()
            for i, email in enumerate(emails):
                s.add(CustomerEmail(customer_id=customer_id, original=email,
                                    normalized=email.strip().lower(), position=i))
            for i, (e164, kind) in enumerate(phones):
                s.add(CustomerPhone(customer_id=customer_id, original=e164, e164=e164, type=kind,
                                    mobile_key=e164 if kind == "MOBILE" else None, position=i))
        return customer_id

    def set_active(self, integration_id: int, active: bool) -> None:
        """Flip an integration's active flag (deactivation drops its pulled data)."""
        with self.ctx.db.session() as s:
            integration = s.get(Integration, integration_id)
            assert integration is not None
            integration.active = active
            if not active:
                for pulled in s.scalars(select(PulledData).where(
                        PulledData.integration_id == integration_id)):
                    s.delete(pulled)

    def pulled(self, customer_id: str, integration_id: int) -> PulledData | None:
        with self.ctx.db.session(readonly=True) as s:
            return s.get(PulledData, (customer_id, integration_id))

    def customer(self, customer_id: str) -> tuple[Customer, list[CustomerEmail],
                                                  list[CustomerPhone]]:
        with self.ctx.db.session(readonly=True) as s:
            customer = s.get(Customer, customer_id)
            assert customer is not None
            return customer, list(customer.emails), list(customer.phones)

    def exchanges(self) -> list[ExchangeRecord]:
        with self.ctx.db.session(readonly=True) as s:
            return list(s.scalars(select(ExchangeRecord).order_by(ExchangeRecord.id)))

    def audit(self, action: str) -> list[AuditEvent]:
        with self.ctx.db.session(readonly=True) as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                  .order_by(AuditEvent.id)))

    def links(self, customer_id: str) -> list[Link]:
        with self.ctx.db.session(readonly=True) as s:
            return list(s.scalars(select(Link).where(Link.customer_id == customer_id)))


def record(external_id: str, *, name: str = "Ada Lovelace", address: str = "",
           emails: Sequence[str] = (), phones: Sequence[tuple[str, str]] = (),
           custom: dict[str, str] | None = None,
           transactions: Sequence[dict[str, Any]] = ()) -> Record:
    """A hand-made adaptor record (phones as ``(original, type)``)."""
    from linker.adaptor import PhoneEntry
    from linker.core.identity import normalize_phone

    return Record(external_customer_id=external_id, person_index=0, name=name, address=address,
                  emails=tuple(emails),
                  phones=tuple(PhoneEntry(p, t, normalize_phone(p)) for p, t in phones),
                  custom_attributes=custom or {}, transactions=tuple(transactions))


def dataset(*records: Record) -> Dataset:
    """A custom adaptor dataset holding exactly these records."""
    return Dataset(name="custom", records=list(records), population=[])


def shared_person() -> tuple[Record, Record]:
    """A person in both the shop and loyalty datasets with the same first email, found once."""
    shop, loyalty = load_dataset("shop"), load_dataset("loyalty")
    shop_members, loyalty_members = shop.members(), loyalty.members()
    duplicates = shop.duplicate_emails() | loyalty.duplicate_emails()
    for index, records in shop_members.items():
        theirs = loyalty_members.get(index, [])
        if len(records) == 1 and len(theirs) == 1:
            email = records[0].emails[0].lower()
            if email == theirs[0].emails[0].lower() and email not in duplicates:
                return records[0], theirs[0]
    raise AssertionError("the datasets share no person with the same email")


def unique_record(name: str = "shop", *, with_transactions: bool = False) -> Record:
    """A record whose first email no other record of the dataset carries."""
    data = load_dataset(name)
    duplicates = data.duplicate_emails()
    return next(r for r in data.records if r.emails and r.emails[0].lower() not in duplicates
                and r.duplicate_of is None and (r.transactions or not with_transactions))


def request_query(exchange: ExchangeRecord) -> dict[str, Any]:
    """The ``query`` of a stored exchange's request."""
    query: dict[str, Any] = json.loads(exchange.request_body)["query"]
    return query




def new_world(ctx: ServiceContext) -> World:
    """A world whose ``ctx.client`` is routed to in-process reference adaptors."""
    router = HostRouter()
    ctx.client = LookupClient(transport=httpx.ASGITransport(app=router))
    return World(ctx, router, itertools.count(1))


def link_manually(world: World, customer: str, integration: int, external_id: str) -> None:
    """A manual link made directly (no lookup)."""
    with world.ctx.db.session() as s:
        create_link(s, customer_id=customer, integration_id=integration,
                    external_customer_id=external_id, method="manual", actor=AGENT)


def record_held_elsewhere(world: World) -> tuple[int, str, str]:
    """Shop whose record R-1 is linked to one profile and matches another by a second email:
    ``(shop id, holder, the other profile)``."""
    rec = record("R-1", emails=["ada@example.com", "ada@work.example.com"])
    shop = world.add_integration("Shop", dataset(rec), autolink_fields=["email"])
    holder = world.add_customer("Ada at home", ["ada@example.com"])
    link_manually(world, holder, shop, "R-1")
    return shop, holder, world.add_customer("Ada at work", ["ada@work.example.com"])


RACE_THREADS = 20
RACE_DEADLINE_S = 120.0


def race(work: Callable[[int], Any], threads: int = RACE_THREADS) -> list[Any]:
    """Run ``work(i)`` for ``i`` in ``range(threads)``, all released together by a barrier.

    Returns, in thread order, what each call returned or the exception it raised; fails the
    test if a thread is still running after the deadline.
    """
    barrier = threading.Barrier(threads)
    outcomes: list[Any] = [None] * threads

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=RACE_DEADLINE_S)
            outcomes[i] = work(i)
        except BaseException as exc:  # handed back to the test, which asserts on it
            outcomes[i] = exc

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=RACE_DEADLINE_S)
    assert not any(w.is_alive() for w in workers), "a racing thread never finished"
    return outcomes
