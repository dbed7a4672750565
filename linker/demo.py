"""The demo: reference adaptors on loopback, a seeded database and the dashboard, in one command.

``linker demo`` (see ``linker.cli.demo_cmd``) strings these parts together; tests use them
one by one:

- ``DemoAdaptors`` serves the four demo adaptors (Shop, Loyalty, Travel and a flaky copy of
  Shop) with uvicorn in background threads, each with its signing key (Loyalty also with Basic
  auth);
- ``seed_demo`` adds what the demo needs and the database lacks, only through the services: the
  integrations (pointing at the adaptors' URLs), the sign-in accounts of ``DEMO_ACCOUNTS`` and
  about fifty customers drawn from the adaptors' population, created one by one so that
  auto-linking runs for each. Seeding again never undoes what users changed;
- ``start_dashboard`` / ``wait_for_dashboard`` / ``stop_process`` run Streamlit as a child
  process on the demo database.

The demo keeps its data in its own directory (``DEMO_HOME``, a SQLite file and a secret key), so
it never touches a real Linker database unless pointed at one. This module never imports
streamlit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from linker.adaptor import (
    BackgroundServer,
    Person,
    Record,
    create_app,
    load_dataset,
    parse_fault,
    people,
)
from linker.config import Settings
from linker.core.permissions import SYSTEM, Actor, Role
from linker.lookup.netguard import ALLOW_ENV, LOOPBACK_NETWORKS
from linker.services.audit_log import PAGE_SIZE_MAX, AuditFilter, AuditLogService
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService, PhoneInput
from linker.services.errors import Conflict
from linker.services.integrations import (
    AttributeSpec,
    IntegrationChanges,
    IntegrationService,
    IntegrationSpec,
    IntegrationView,
)
from linker.services.reports import AuditEntry
from linker.services.users import UserService
from linker.store.files import ensure_private_dir

SEED_ACTOR = Actor("system, demo seed", Role.ADMIN)
"""Who the seed's integration and account changes are audited as, so it can tell them from
changes users made (it moves an integration's URL only when it set the URL last)."""
DEMO_HOME = Path(".linker") / "demo"
"""Default data directory of the demo (relative to the working directory)."""
DASHBOARD_HOST = "127.0.0.1"
DASHBOARD_PORT = 8501
ADAPTOR_HOST = "127.0.0.1"
FLAKY_FAULTS = ("latency:300", "jitter:400", "error-rate:0.2", "hang-rate:0.02",
                "malformed-rate:0.03")
"""What makes "Shop (flaky)" flaky: 300-700 ms per answer, one request in five fails, one in
fifty hangs (until the client's timeout) and one in about thirty gets a truncated body."""
DEMO_DATASET_SIZE = 1000
"""Records per reference dataset in the demo (a population of 2,000 people behind them, so the
demo's ~2,000 profiles overlap them the way real data does)."""
HEALTH_PATH = "/_stcore/health"
DASHBOARD_SCRIPT = Path("dashboard") / "app.py"
_DB_FILES = ("linker.db", "linker.db-wal", "linker.db-shm", "linker.db-journal", "secret.key")


# ------------------------------------------------------------------------- what the demo has


@dataclass(frozen=True)
class DemoAccount:
    """A sign-in account the demo creates (the passwords are public: demo only)."""

    username: str
    role: Role
    password: str


DEMO_ACCOUNTS = (
    DemoAccount("admin", Role.ADMIN, "linker-admin-demo"),
    DemoAccount("developer", Role.DEVELOPER, "linker-developer-demo"),
    DemoAccount("agent", Role.AGENT, "linker-agent-demo"),
    DemoAccount("lead", Role.SUPPORT_LEAD, "linker-lead-demo"),
)


def _attributes(*pairs: tuple[str, str]) -> tuple[AttributeSpec, ...]:
    return tuple(AttributeSpec(attribute, label) for attribute, label in pairs)


@dataclass(frozen=True)
class DemoIntegration:
    """One demo integration and the reference adaptor behind it."""

    key: str
    """Short name, used for ports and URLs (``shop``, ``loyalty``, ``travel``, ``flaky``)."""
    name: str
    dataset: str
    default_port: int
    signing_key: str
    search_query: tuple[AttributeSpec, ...]
    search_results: tuple[AttributeSpec, ...]
    autolink_fields: tuple[str, ...] = ()
    username: str = ""
    password: str = ""
    faults: tuple[str, ...] = ()

    def spec(self, url: str) -> IntegrationSpec:
        """The integration's settings for an adaptor served at ``url``."""
        return IntegrationSpec(
            name=self.name, url=url, username=self.username, password=self.password,
            signing_key=self.signing_key, search_query_attributes=self.search_query,
            search_results_attributes=self.search_results,
            autolink_enabled=bool(self.autolink_fields), autolink_fields=self.autolink_fields)


_SHOP_QUERY = _attributes(("email", "Email"), ("phone", "Phone"), ("orderNumber", "Order Number"))
_SHOP_RESULTS = _attributes(("name", "Name"), ("email", "Email"), ("phone", "Phone"),
                            ("customerSince", "Customer since"), ("orderCount", "Orders"))

DEMO_INTEGRATIONS = (
    DemoIntegration("shop", "Shop", "shop", 8401, "demo-shop-signing-key", _SHOP_QUERY,
                    _SHOP_RESULTS, ("email", "mobile")),
    DemoIntegration("loyalty", "Loyalty", "loyalty", 8402, "demo-loyalty-signing-key",
                    _attributes(("email", "Email"), ("phone", "Phone")),
                    _attributes(("name", "Name"), ("email", "Email"), ("phone", "Phone"),
                                ("tier", "Tier"), ("points", "Points")),
                    ("email", "mobile"), username="linker", password="loyalty-demo-password"),
    DemoIntegration("travel", "Travel", "travel", 8403, "demo-travel-signing-key",
                    _attributes(("phone", "Mobile phone")),
                    _attributes(("name", "Name"), ("email", "Email"), ("phone", "Phone"),
                                ("eliteStatus", "Elite status"), ("homeAirport", "Home airport")),
                    ("mobile",)),
    DemoIntegration("flaky", "Shop (flaky)", "shop", 8404, "demo-flaky-signing-key",
                    _SHOP_QUERY, _SHOP_RESULTS, faults=FLAKY_FAULTS),
)
"""Shop, Loyalty and Travel auto-link (Travel by mobile only); the flaky copy of Shop does not,
so it is searched (and fails now and then) whenever an agent searches all unlinked systems."""


# --------------------------------------------------------------------------------- adaptors


class DemoAdaptors:
    """The demo's reference adaptors, served in background threads; a context manager.

    ``ports`` maps an integration key to a port (0 picks a free one); keys left out use the
    integration's default port. ``urls`` is filled once started. ``dataset_size`` is the
    number of records per dataset (default ``DEMO_DATASET_SIZE``).
    """

    def __init__(self, ports: Mapping[str, int] | None = None, host: str = ADAPTOR_HOST,
                 integrations: Sequence[DemoIntegration] = DEMO_INTEGRATIONS,
                 dataset_size: int = DEMO_DATASET_SIZE) -> None:
        self.host = host
        self.dataset_size = dataset_size
        self.integrations = tuple(integrations)
        self.ports = {i.key: (ports or {}).get(i.key, i.default_port) for i in self.integrations}
        self.servers: dict[str, BackgroundServer] = {}

    @property
    def urls(self) -> dict[str, str]:
        """Integration key → URL of its running adaptor."""
        return {key: server.url for key, server in self.servers.items()}

    def start(self) -> None:
        """Start every adaptor; RuntimeError naming the port when one cannot be served."""
        try:
            for integration in self.integrations:
                app = create_app(
                    load_dataset(integration.dataset, self.dataset_size),
                    signing_key=integration.signing_key,
                    username=integration.username or None,
                    password=integration.password or None,
                    faults=[parse_fault(f) for f in integration.faults])
                server = BackgroundServer(app, self.host, self.ports[integration.key])
                try:
                    server.start()
                except OSError as exc:
                    raise RuntimeError(
                        f"cannot serve the {integration.name} adaptor on {self.host}:"
                        f"{self.ports[integration.key]} ({exc.strerror or exc}); stop what uses "
                        "that port or pick other ports with --adaptor-ports") from None
                self.servers[integration.key] = server
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every adaptor that was started."""
        for server in self.servers.values():
            server.stop()
        self.servers.clear()

    def __enter__(self) -> DemoAdaptors:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# ------------------------------------------------------------------------------- customers


@dataclass(frozen=True)
class DemoCustomer:
    """A profile the demo creates and how it overlaps the adaptors' data."""

    kind: str
    """``email_match``, ``phone_only``, ``travel_phone``, ``duplicate_email``, ``other_email``,
    ``home_phone`` or ``nobody``."""
    name: str
    emails: tuple[str, ...]
    phones: tuple[tuple[str, str], ...]
    """(E.164 number, type) pairs."""

    @property
    def key(self) -> tuple[str, str]:
        """How the seed finds it again: ``("email", value)`` or ``("phone", value)``."""
        return ("email", self.emails[0]) if self.emails else ("phone", self.phones[0][0])


CUSTOMER_MIX = {"email_match": 20, "phone_only": 8, "travel_phone": 4, "duplicate_email": 3,
                "other_email": 5, "home_phone": 3, "nobody": 8}
"""How many customers of each kind ``demo_customers`` plans (51 in all)."""


def demo_customers(mix: Mapping[str, int] = CUSTOMER_MIX) -> list[DemoCustomer]:
    """The demo's customers, drawn deterministically from the adaptors' population:

    - ``email_match``: the personal email and mobile of someone in Shop and/or Loyalty (Travel
      links too when they fly, by mobile);
    - ``phone_only``: someone Shop knows only under their work email: Shop links by mobile;
    - ``travel_phone``: someone only Travel knows: it links by mobile, the others find nothing;
    - ``duplicate_email``: an email two Shop accounts share: auto-linking is ambiguous;
    - ``other_email``: a Shop customer under an address Shop does not know and no phone: no
      auto-link, for linking by hand (search by order number or phone);
    - ``home_phone``: only a HOME phone: nothing to auto-link with (skipped);
    - ``nobody``: people no adaptor knows.
    """
    shop, loyalty, travel = (load_dataset(n, DEMO_DATASET_SIZE)
                             for n in ("shop", "loyalty", "travel"))
    population = people(shop)
    in_shop, in_loyalty, in_travel = shop.members(), loyalty.members(), travel.members()
    used: set[int] = set()
    planned: list[DemoCustomer] = []

    def take(kind: str, candidates: Sequence[Person]) -> None:
        count = mix.get(kind, 0)
        for person in candidates:
            if count <= 0:
                return
            if person.index in used:
                continue
            used.add(person.index)
            planned.append(_customer_for(kind, person))
            count -= 1

    duplicated = [population[r.person_index] for r in
                  (shop.get(x.duplicate_of) for x in shop.records if x.duplicate_of)
                  if r is not None]
    # Only people whose own email is the shared one (some duplicates share a work email).
    shared = {e.lower() for e in shop.duplicate_emails()}
    duplicated = [p for p in duplicated if p.email.lower() in shared]
    # Fully unlinked duplicates first: they are the clearest "link by hand" cases.
    duplicated.sort(key=lambda p: (p.index in in_loyalty or p.index in in_travel, p.index))
    take("duplicate_email", duplicated)
    dup_people = {p.index for p in duplicated}
    plain_shop = [p for p in population if p.index in in_shop and p.index not in dup_people]

    def knows_email(records_by_person: Mapping[int, Sequence[Record]], person: Person) -> bool:
        return any(person.email in r.emails for r in records_by_person.get(person.index, ()))

    take("email_match", [p for p in population if p.index not in dup_people and (
        knows_email(in_shop, p) or knows_email(in_loyalty, p))])
    take("phone_only", [p for p in plain_shop if not knows_email(in_shop, p)
                        and p.index not in in_loyalty
                        and any(ph.e164 == p.mobile and ph.type == "MOBILE"
                                for r in in_shop[p.index] for ph in r.phones)])
    take("travel_phone", [p for p in population if p.index in in_travel
                          and p.index not in in_shop and p.index not in in_loyalty])
    take("other_email", [p for p in plain_shop if p.index not in in_loyalty
                         and any(r.order_numbers() for r in in_shop[p.index])])
    take("home_phone", [p for p in population if p.home_phone is not None])
    take("nobody", [p for p in population if p.index not in in_shop
                    and p.index not in in_loyalty and p.index not in in_travel])
    return planned


def _customer_for(kind: str, person: Person) -> DemoCustomer:
    mobile = ((person.mobile, "MOBILE"),)
    if kind == "duplicate_email":
        return DemoCustomer(kind, person.name, (person.email,), ())
    if kind == "other_email":
        alias = f"{person.first_name}.{person.last_name}".lower().replace("'", "")
        return DemoCustomer(kind, person.name, (f"{alias}@mail.example",), ())
    if kind == "home_phone":
        return DemoCustomer(kind, person.name, (), ((str(person.home_phone), "HOME"),))
    return DemoCustomer(kind, person.name, (person.email,), mobile)


# ------------------------------------------------------------------------------------ seed


@dataclass
class SeedReport:
    """What ``seed_demo`` did."""

    integrations: dict[str, str] = field(default_factory=dict)
    """Integration name → ``created``, ``updated`` (made to match the demo, or its URL
    followed a moved adaptor), ``unchanged`` or ``deleted`` (a user deleted it: not brought
    back)."""
    accounts: dict[str, str] = field(default_factory=dict)
    """Username → ``created`` or ``unchanged``."""
    customers_created: int = 0
    customers_existing: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    """Auto-link outcomes of the customers created now (``linked``, ``ambiguous``, …)."""
    customer_ids: dict[str, str] = field(default_factory=dict)
    """First email (or phone) of each demo customer → its profile id."""

    def summary(self) -> str:
        """One line for the console."""
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items())) or "none"
        actions = Counter(self.integrations.values())
        return (f"{len(self.integrations)} integrations ({actions['created']} new, "
                f"{actions['updated']} updated), "
                f"{len(self.accounts)} accounts, {self.customers_created} customers created "
                f"and {self.customers_existing} already there; auto-link outcomes: {outcomes}")


def seed_demo(ctx: ServiceContext, urls: Mapping[str, str],
              customers: Sequence[DemoCustomer] | None = None,
              integrations: Sequence[DemoIntegration] = DEMO_INTEGRATIONS,
              accounts: Sequence[DemoAccount] = DEMO_ACCOUNTS) -> SeedReport:
    """Add to the database what the demo needs and it lacks: integrations pointing at ``urls``
    (integration key → adaptor URL), the accounts and the customers (default
    ``demo_customers()``).

    Seeding again only adds what is missing and never undoes what users changed since: an
    existing account is left as it is (role, password, disabled); an integration a user
    changed (settings, auto-linking, probe, active) keeps their settings, and one the seed
    created that a user renamed or deleted is not brought back. The adaptors' addresses are
    followed: an integration no user has changed (per the audit log; one made outside the
    services has no trail) is made to match the demo, and one users changed gets a moved
    adaptor's new URL when the seed set the URL it has, nothing else. Integration and account
    changes are audited as ``SEED_ACTOR``. New customers are created through the customer
    service, so auto-linking runs for each; the adaptors must be running.
    """
    report = SeedReport()
    _seed_integrations(ctx, urls, integrations, report)
    user_service = UserService(ctx)
    existing = {user.username for user in user_service.list(SEED_ACTOR)}
    for account in accounts:
        report.accounts[account.username] = _seed_account(user_service, account, existing)
    customer_service = CustomerService(ctx)
    for customer in demo_customers() if customers is None else customers:
        _seed_customer(customer_service, customer, report)
    return report


def _seed_integrations(ctx: ServiceContext, urls: Mapping[str, str],
                       integrations: Sequence[DemoIntegration], report: SeedReport) -> None:
    """Create the missing integrations; configure the ones no user has changed; move the
    URLs the seed set when an adaptor moved."""
    service = IntegrationService(ctx)
    audit = AuditLogService(ctx)
    views = {view.id: view for view in service.list(SEED_ACTOR)}
    by_name = {view.name: view for view in views.values()}
    created = _seed_created_ids(audit)
    for integration in integrations:
        url = urls.get(integration.key)
        if url is None:
            raise KeyError(f"no adaptor URL for the {integration.name} integration "
                           f"(key {integration.key!r})")
        seeded_id = created.get(integration.name)
        view = views.get(seeded_id) if seeded_id is not None else by_name.get(integration.name)
        if view is None and seeded_id is not None:
            action = "deleted"  # the seed made it once and a user deleted it: theirs
        elif view is None:
            action = _create_integration(service, integration.spec(url))
        elif not _changed_by_users(audit, view.id):
            action = service.apply(SEED_ACTOR, integration.spec(url)).action
        else:
            action = _follow_adaptor(service, audit, view, url)
        report.integrations[integration.name] = action


_SETTING_ACTIONS = ("integration.created", "integration.updated", "integration.autolink_changed",
                    "integration.activated", "integration.deactivated", "probe.configure")
"""The audited changes of an integration's settings (probe included)."""


def _seed_created_ids(audit: AuditLogService) -> dict[str, int]:
    """Integration name → id of each integration the seed created (from the audit log)."""
    page = audit.page(SEED_ACTOR, AuditFilter(actor=SEED_ACTOR.username,
                                              action="integration.created"), limit=PAGE_SIZE_MAX)
    created: dict[str, int] = {}
    for entry in reversed(page.entries):  # oldest first: the newest creation of a name wins
        name = (entry.after or {}).get("name")
        if isinstance(name, str) and entry.entity_id.isdigit():
            created[name] = int(entry.entity_id)
    return created


def _events(audit: AuditLogService, action: str, integration_id: int) -> Iterator[AuditEntry]:
    """The audit events ``action`` on the integration itself, newest first."""
    before = None
    while True:
        page = audit.page(SEED_ACTOR, AuditFilter(action=action, integration_id=integration_id),
                          before=before, limit=PAGE_SIZE_MAX)
        yield from (e for e in page.entries
                    if e.entity_type == "integration" and e.entity_id == str(integration_id))
        if page.next_before is None:
            return
        before = page.next_before


def _changed_by_users(audit: AuditLogService, integration_id: int) -> bool:
    """Whether anyone but the seed changed the integration's settings (or created it through
    the services); one made outside them, with no audit trail, counts as untouched."""
    return any(entry.actor != SEED_ACTOR.username
               for action in _SETTING_ACTIONS for entry in _events(audit, action, integration_id))


def _create_integration(service: IntegrationService, spec: IntegrationSpec) -> str:
    try:
        service.create(SEED_ACTOR, spec)
    except Conflict:  # created meanwhile (another seed): it is there
        return "unchanged"
    return "created"


def _follow_adaptor(service: IntegrationService, audit: AuditLogService, view: IntegrationView,
                    url: str) -> str:
    """Give an integration users changed its adaptor's new URL, when the seed set the URL it
    has, and change nothing else; ``updated`` or ``unchanged``."""
    if view.url == url or _url_set_by(audit, view.id) != SEED_ACTOR.username:
        return "unchanged"
    service.update(SEED_ACTOR, view.id, IntegrationChanges(url=url))
    return "updated"


def _url_set_by(audit: AuditLogService, integration_id: int) -> str | None:
    """Who gave the integration its current URL (the newest audited change of it)."""
    for action in ("integration.updated", "integration.created"):
        for entry in _events(audit, action, integration_id):
            if "url" in (entry.after or {}):
                return entry.actor
    return None


def _seed_account(service: UserService, account: DemoAccount, existing: set[str]) -> str:
    """Create the account when missing (``created``); an existing one is left as it is."""
    if account.username in existing:
        return "unchanged"
    try:
        service.create(SEED_ACTOR, account.username, account.role, account.password)
    except Conflict:
        return "unchanged"
    return "created"


def _seed_customer(service: CustomerService, customer: DemoCustomer, report: SeedReport) -> None:
    how, value = customer.key
    found = service.find(SYSTEM, email=value if how == "email" else None,
                         phone=value if how == "phone" else None, limit=1)
    if found:
        report.customers_existing += 1
        report.customer_ids[value] = found[0].id
        return
    try:
        created = service.create(SYSTEM, customer.name, customer.emails,
                                 [PhoneInput(n, t) for n, t in customer.phones])
    except Conflict:
        # Another profile got this value meanwhile (pulled in by a refresh): it is there.
        report.customers_existing += 1
        return
    report.customers_created += 1
    report.customer_ids[value] = created.customer.id
    report.outcomes.update(r.outcome.value for r in created.autolink)


# ------------------------------------------------------------------------------- settings


def demo_settings(home: Path | str = DEMO_HOME) -> Settings:
    """Settings of the demo: everything (SQLite file, secret key) under ``home``, whatever the
    LINKER_* environment says, so the demo never touches another database."""
    path = Path(home).expanduser().resolve()
    return Settings(home=path, database_url=f"sqlite:///{path / 'linker.db'}", secret_key=None)


def reset_demo(home: Path | str = DEMO_HOME) -> list[Path]:
    """Delete the demo database and secret key under ``home``; returns what was deleted.

    Only the files the demo makes are removed; anything else in the folder stays.
    """
    removed = []
    for name in _DB_FILES:
        path = Path(home).expanduser() / name
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def open_demo_context(settings: Settings) -> ServiceContext:
    """A ServiceContext on the demo database (created and migrated when new)."""
    ensure_private_dir(settings.home)
    allow_demo_adaptors()
    return ServiceContext.from_settings(settings)


def allow_demo_adaptors(env: MutableMapping[str, str] | None = None) -> None:
    """Let lookups reach the demo's loopback adaptors (unless LINKER_ALLOW_NETWORKS is set)."""
    (os.environ if env is None else env).setdefault(ALLOW_ENV, LOOPBACK_NETWORKS)


# ------------------------------------------------------------------------------ dashboard


def repo_root() -> Path:
    """The source tree the dashboard runs from; RuntimeError when Linker is not installed from
    a checkout (``pip install -e .``), since the dashboard is not part of the package."""
    root = Path(__file__).resolve().parents[1]
    if not (root / DASHBOARD_SCRIPT).is_file():
        raise RuntimeError(f"the dashboard ({DASHBOARD_SCRIPT}) is not next to the linker "
                           f"package in {root}; run the demo from a source checkout installed "
                           "with `pip install -e .`")
    return root


def dashboard_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the dashboard process: ``base`` (default: this process's) with the
    demo's LINKER_HOME and database, and no LINKER_SECRET_KEY (the demo's key file is used)."""
    env = dict(os.environ if base is None else base)
    env.pop("LINKER_SECRET_KEY", None)
    env.update({"LINKER_HOME": str(settings.home), "LINKER_DATABASE_URL": settings.database_url,
                "PYTHONUNBUFFERED": "1"})
    allow_demo_adaptors(env)
    return env


def dashboard_command(port: int, host: str = DASHBOARD_HOST) -> list[str]:
    """The command line running the dashboard with this Python (from the repository root)."""
    return [sys.executable, "-m", "streamlit", "run", str(DASHBOARD_SCRIPT),
            "--server.headless", "true", "--server.port", str(port),
            "--server.address", host, "--browser.gatherUsageStats", "false"]


def start_dashboard(settings: Settings, port: int = DASHBOARD_PORT, host: str = DASHBOARD_HOST,
                    *, env: Mapping[str, str | None] | None = None, log: Path | None = None
                    ) -> subprocess.Popen[bytes]:
    """Start Streamlit on the demo database as a child process (cwd: the repository root).

    ``env`` adds or overrides environment variables (None removes one); ``log`` receives the
    process's output instead of this terminal.
    """
    environment = dashboard_env(settings)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    if log is None:
        return subprocess.Popen(dashboard_command(port, host), cwd=repo_root(), env=environment)
    with log.open("ab") as output:
        return subprocess.Popen(dashboard_command(port, host), cwd=repo_root(), env=environment,
                                stdout=output, stderr=subprocess.STDOUT)


def dashboard_url(port: int = DASHBOARD_PORT, host: str = DASHBOARD_HOST) -> str:
    """Where the dashboard is served."""
    return f"http://{host}:{port}"


def wait_for_dashboard(url: str, process: subprocess.Popen[bytes] | None = None,
                       timeout_s: float = 60.0) -> None:
    """Poll ``url``'s health endpoint until it answers ``ok``; RuntimeError when the deadline
    passes or ``process`` exits first."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the dashboard exited with code {process.returncode} before "
                                   "it was ready; see its output above")
            try:
                response = client.get(url.rstrip("/") + HEALTH_PATH)
                if response.status_code == 200 and response.text.strip() == "ok":
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
    raise RuntimeError(f"the dashboard at {url} was not ready after {timeout_s:g} s ({last})")


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """Stop a child process: SIGTERM (SIGINT for Streamlit's clean exit would also do), then
    SIGKILL after ``timeout_s``; returns its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return int(process.returncode)
