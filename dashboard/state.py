"""Cached services, cached read models, cache clearing after writes, flash messages and
background jobs, for every page.

Usage in a page::

    from dashboard import state
    actor = require(Permission.VIEW_INTEGRATIONS, page="integrations")
    rows = state.integration_list(actor)                # cached 30 s, per database and actor
    view = state.customer(actor, cid)                    # every reader is typed and cached
    svc = state.services()                               # for writes and uncached calls
    svc.integrations.create(actor, spec)
    state.done("Saved Shop")                             # clear read caches, flash, rerun
    state.done("Linked", scope=state.PROFILE_WRITE)      # ... but keep the settings readers
    st.button("Link", on_click=link)  # where link() writes, then state.after_write("Linked"):
                                      # the click's own run shows it (no second run)

Rules: reads go through a ``@reader`` below (add one for a new read model); every write is
followed by ``changed()`` (``done`` and ``after_write`` do it), so no page shows stale data
after its own change. A write to one profile (link, unlink, refresh, suppression, open) passes
``scope=PROFILE_WRITE``: it drops every read model but the integration settings ones. Long work
(a backfill) runs as a ``start_job`` background job the page polls with ``job(name)``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, Literal, NoReturn, ParamSpec, TypeVar, cast

import streamlit as st

from linker.config import Settings
from linker.core.permissions import Actor, Role
from linker.services.audit_log import AuditChoices, AuditCursor, AuditFilter, AuditPage
from linker.services.autolinking import OutcomeCounts, OutcomeView
from linker.services.backfill import BackfillChoice
from linker.services.coverage import SharePoint, WorklistPage
from linker.services.customers import CustomerSummary, CustomerView
from linker.services.facade import Services
from linker.services.health import HealthOverview
from linker.services.integrations import IntegrationView
from linker.services.linking import SystemChoice
from linker.services.probes import ProbeConfig, ProbeStatus, ProbeTicker
from linker.services.reports import Coverage
from linker.services.why import Explanation
from linker.store.exchanges import StoredExchange

_log = logging.getLogger(__name__)

READ_TTL_S = 30
"""Seconds a cached read model lives; writes clear it at once."""

FlashKind = Literal["success", "info", "warning", "error"]
_FLASHES = "_state_flashes"


# -- services ---------------------------------------------------------------------------------


def settings() -> Settings:
    """Settings from LINKER_* environment variables (top-level keys of ``secrets.toml`` are
    exported to the environment by Streamlit, so they work too)."""
    return Settings.from_env()


def _release(services: Services) -> None:
    services.ctx.db.dispose()


@st.cache_resource(show_spinner=False, on_release=_release)
def _services_for(database_url: str, _settings: Settings) -> Services:
    return Services.from_settings(_settings)


def services() -> Services:
    """The one ``Services`` of the configured database (opened and migrated on first use)."""
    current = settings()
    return _services_for(current.database_url, current)


def _stop_ticker(ticker: ProbeTicker | None) -> None:
    if ticker is not None:
        ticker.stop()


@st.cache_resource(show_spinner=False, on_release=_stop_ticker)
def _probe_ticker_for(database_url: str) -> ProbeTicker | None:
    svc = services()
    return ProbeTicker(svc.probes).start() if svc.ctx.db.is_sqlite else None


def start_probe_ticker() -> None:
    """On SQLite (no job queue), run the due scheduled probes in this process every minute
    (one ticker per database; PostgreSQL leaves them to ``linker worker``)."""
    _probe_ticker_for(settings().database_url)


# -- read models ------------------------------------------------------------------------------

P = ParamSpec("P")
T = TypeVar("T")


_READERS: list[str] = []
"""The name of every ``@reader`` (``changed`` drops them by name)."""


@st.cache_resource(show_spinner=False)
def _generations() -> dict[tuple[str, str], int]:
    """(database URL, reader name) → generation, part of every cache key: ``changed`` with a
    scope bumps the generations it drops, for every session of the server."""
    return {}


@st.cache_data(ttl=READ_TTL_S, show_spinner=False, max_entries=1000)
def _cached(_services: Services, _read: Callable[..., Any], reader_name: str, database_url: str,
            generation: int, username: str, role: str, args: tuple[Any, ...],
            kwargs: tuple[tuple[str, Any], ...]) -> Any:
    return _read(_services, Actor(username, Role(role)), *args, **dict(kwargs))


def reader(read: Callable[Concatenate[Services, Actor, P], T]
           ) -> Callable[Concatenate[Actor, P], T]:
    """Make ``read(services, actor, *args)`` a typed cached read model ``f(actor, *args)``:
    cached for ``READ_TTL_S`` per database, reader, actor and arguments (arguments must be
    hashable: str, int, datetime, tuple), dropped at once by ``changed()``. Service errors are
    raised as usual and never cached."""
    name = _reader_name(read)
    _READERS.append(name)

    @functools.wraps(read)
    def cached(actor: Actor, /, *args: P.args, **kwargs: P.kwargs) -> T:
        current = settings()
        generation = _generations().get((current.database_url, name), 0)
        return cast(T, _cached(_services_for(current.database_url, current), read, name,
                               current.database_url, generation, actor.username,
                               actor.role.value, args, tuple(sorted(kwargs.items()))))

    return cached


def _reader_name(read: Callable[..., Any]) -> str:
    """A reader's name: the same for the read function and its cached wrapper."""
    return f"{read.__module__}.{read.__qualname__}"


@reader
def integration_list(svc: Services, actor: Actor) -> list[IntegrationView]:
    """Every integration (no secrets)."""
    return svc.integrations.list(actor)


@reader
def backfill_choices(svc: Services, actor: Actor) -> list[BackfillChoice]:
    """The integrations a backfill may run over (active, auto-linking on, with a field)."""
    return svc.backfill.eligible(actor)


@reader
def systems(svc: Services, actor: Actor) -> list[SystemChoice]:
    """Every integration as a system to search or explain (id, name, active)."""
    return svc.linking.systems(actor)


@reader
def find_customers(svc: Services, actor: Actor, *, email: str | None = None,
                   phone: str | None = None, name: str | None = None,
                   limit: int = 50) -> list[CustomerSummary]:
    """Customers matching one criterion (none: the newest), as ``customers.find``."""
    return svc.customers.find(actor, email=email, phone=phone, name=name, limit=limit)


@reader
def customer(svc: Services, actor: Actor, customer_id: str) -> CustomerView:
    """One customer with links, pulled data and suppressions (NotFound when unknown)."""
    return svc.customers.get(actor, customer_id)


@reader
def explanation(svc: Services, actor: Actor, customer_id: str,
                integration_id: int) -> Explanation:
    """Why a profile is (not) linked to an integration, with the trail behind it."""
    return svc.why.explain(actor, customer_id, integration_id)


@reader
def exchange(svc: Services, actor: Actor, exchange_id: int) -> StoredExchange:
    """One stored exchange (NotFound when unknown)."""
    return svc.exchanges.get(actor, exchange_id)


@reader
def _recent_outcomes(svc: Services, actor: Actor, integration_id: int | None,
                     outcome: str | None, since: datetime | None,
                     limit: int) -> list[OutcomeView]:
    return svc.autolink.recent_outcomes(actor, integration_id=integration_id, outcome=outcome,
                                        since=since, limit=limit)


def recent_outcomes(actor: Actor, *, integration_id: int | None, outcome: str | None,
                    window: str, limit: int = 200) -> list[OutcomeView]:
    """The newest auto-link outcomes, filtered (``window`` as for ``since``)."""
    return _recent_outcomes(actor, integration_id, outcome, since(window), limit)


@reader
def _outcome_counts(svc: Services, actor: Actor, since: datetime | None) -> OutcomeCounts:
    return svc.autolink.outcome_counts(actor, since)


def outcome_counts(actor: Actor, window: str) -> OutcomeCounts:
    """Auto-link attempts per outcome and integration in ``window``."""
    return _outcome_counts(actor, since(window))


HEALTH_TTL_S = 5
"""Seconds a health overview is reused: the page refreshes itself about this often."""


@reader
def _health_overview(svc: Services, actor: Actor, window: str, tick: int) -> HealthOverview:
    return svc.health.overview(actor, window)


def health_overview(actor: Actor, window: str) -> HealthOverview:
    """Tiles and series of the health page for ``window`` (``1h``, ``24h``, ``7d``), read
    afresh every ``HEALTH_TTL_S`` seconds (the tick is part of the cache key)."""
    return _health_overview(actor, window, int(time.time() // HEALTH_TTL_S))


@reader
def _probe_statuses(svc: Services, actor: Actor, tick: int) -> list[ProbeStatus]:
    return svc.probes.statuses(actor)


def probe_statuses(actor: Actor) -> list[ProbeStatus]:
    """Every integration's scheduled probe (last card, verdict, next due), read afresh every
    ``HEALTH_TTL_S`` seconds like the health overview."""
    return _probe_statuses(actor, int(time.time() // HEALTH_TTL_S))


@reader
def probe_settings(svc: Services, actor: Actor, integration_id: int) -> ProbeConfig:
    """One integration's probe settings (defaults when never set)."""
    return svc.probes.settings(actor, integration_id)


@reader
def coverage_summary(svc: Services, actor: Actor) -> Coverage:
    """Profiles, linked profiles, per integration auto / manual, latest outcome counts."""
    return svc.coverage.summary(actor)


@reader
def coverage_trend(svc: Services, actor: Actor, days: int = 30) -> list[SharePoint]:
    """The linked share at the end of each of the last ``days`` days."""
    return svc.coverage.trend(actor, days)


@reader
def worklist_counts(svc: Services, actor: Actor, integration_id: int) -> dict[str, int]:
    """Profiles not linked to an integration, per reason."""
    return svc.coverage.reason_counts(actor, integration_id)


@reader
def worklist(svc: Services, actor: Actor, integration_id: int, reason: str | None,
             after: str | None, limit: int) -> WorklistPage:
    """One keyset page of a worklist (``after``: the last customer id of the page before)."""
    return svc.coverage.worklist(actor, integration_id, reason, after=after, limit=limit)


@reader
def audit_page(svc: Services, actor: Actor, filters: AuditFilter,
               before: AuditCursor | None, limit: int) -> AuditPage:
    """One keyset page of the audit log, newest first (``before``: time and id of the last
    event of the page before)."""
    return svc.audit_log.page(actor, filters, before=before, limit=limit)


@reader
def audit_choices(svc: Services, actor: Actor) -> AuditChoices:
    """The actors and actions in the audit log."""
    return svc.audit_log.choices(actor)


SETTINGS_READERS = frozenset(_reader_name(f) for f in (integration_list, backfill_choices,
                                                      systems, exchange))
"""Read models a write to a profile cannot change: integration settings, stored exchanges."""


@dataclass(frozen=True)
class Scope:
    """What a write may have changed: every read model but those named in ``keeps``."""

    keeps: frozenset[str]


PROFILE_WRITE = Scope(SETTINGS_READERS)
"""A write to one profile (link, unlink, refresh, suppression, open with auto-linking)."""


def changed(scope: Scope | None = None) -> None:
    """Call after every write: drops the cached read models it may have changed (without a
    scope: every one), for every session, so the next run reads them afresh. (A read that
    started before the write and ends after it is kept under the old generation: unread.)"""
    if scope is None:
        st.cache_data.clear()
        return
    url = settings().database_url
    generations = _generations()
    for name in _READERS:
        if name not in scope.keeps:
            generations[(url, name)] = generations.get((url, name), 0) + 1


def since(window: str) -> datetime | None:
    """The start of a named time window (``1h``, ``24h``, ``7d``, ``30d``; ``all`` → None),
    rounded down to the minute so cached reads keyed by it stay warm."""
    spans = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
             "30d": timedelta(days=30)}
    if window not in spans:
        return None
    start = datetime.now(UTC) - spans[window]
    return start.replace(second=0, microsecond=0)


# -- flash messages -----------------------------------------------------------------------------


def flash(message: str, kind: FlashKind = "success") -> None:
    """Show ``message`` at the top of the next run of the page (survives ``st.rerun``)."""
    st.session_state.setdefault(_FLASHES, []).append((kind, message))


def show_flashes() -> None:
    """Render and forget the pending flash messages (the frame calls this before the page)."""
    for kind, message in st.session_state.pop(_FLASHES, []):
        getattr(st, kind)(message)


def after_write(message: str | None = None, kind: FlashKind = "success",
                scope: Scope | None = None) -> None:
    """After a write made in a widget callback (``on_click=``): clear the read caches
    ``scope`` names (as ``changed``) and flash ``message`` for the run that follows the
    click, which then shows the result (one run a click, no ``st.rerun``)."""
    changed(scope)
    if message:
        flash(message, kind)


def done(message: str | None = None, kind: FlashKind = "success",
         scope: Scope | None = None) -> NoReturn:
    """After a write in the script: as ``after_write``, then rerun the app."""
    after_write(message, kind, scope)
    st.rerun()


def reset_widgets(prefix: str) -> None:
    """Forget the values of every widget whose key starts with ``prefix`` (e.g. a form after a
    successful save), so they start again from their defaults on the next run."""
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]


def refill_widgets(marker: str, version: object, values: Mapping[str, Any]) -> bool:
    """Prefill again when the source changed: when ``version`` (e.g. the record's
    ``updated_at``) differs from the one noted under ``marker``, set each widget key of
    ``values`` to its stored value, so the browser shows it instead of the previous one
    (forgetting the key would not reach the browser); True when the widgets were refilled."""
    noted = st.session_state.get(marker)
    st.session_state[marker] = version
    if noted is None or noted == version:
        return False
    for key, value in values.items():
        st.session_state[key] = value
    return True


# -- background jobs ------------------------------------------------------------------------------


@dataclass
class BackgroundJob:
    """Work running in a thread beside the script runs (e.g. a backfill).

    ``work(report, cancel)`` gets a callback to publish progress (any value; the page shows it)
    and a ``threading.Event`` set by Cancel. The page polls ``progress``, ``done``, ``result``
    and ``error`` on each run.
    """

    name: str
    started_by: str
    label: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Any = None
    result: Any = None
    error: BaseException | None = None
    finished_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Whatever the page wants to remember about the job (e.g. the chosen integrations)."""
    _thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        """True once ``work`` returned or raised."""
        return self.finished_at is not None

    def start(self, work: Callable[[Callable[[Any], None], threading.Event], Any]) -> None:
        """Run ``work`` in a daemon thread."""
        def report(value: Any) -> None:
            self.progress = value

        def run() -> None:
            try:
                self.result = work(report, self.cancel)
            except BaseException as exc:  # kept for the page to show, and logged
                self.error = exc
                _log.exception("background job %s (%s) failed", self.name, self.label)
            finally:
                self.finished_at = datetime.now(UTC)

        self._thread = threading.Thread(target=run, name=f"linker-job-{self.name}", daemon=True)
        self._thread.start()


@st.cache_resource(show_spinner=False)
def _job_registry() -> dict[tuple[str, str], BackgroundJob]:
    return {}


def job(name: str) -> BackgroundJob | None:
    """The latest job called ``name`` on this database (running or finished), or None.

    Jobs are shared by every session of the server, so a second admin sees a running backfill.
    """
    return _job_registry().get((settings().database_url, name))


def start_job(name: str, actor: Actor, label: str,
              work: Callable[[Callable[[Any], None], threading.Event], Any],
              meta: dict[str, Any] | None = None) -> BackgroundJob:
    """Start ``work`` as job ``name`` unless one with that name is still running (then that
    one is returned, untouched)."""
    registry = _job_registry()
    key = (settings().database_url, name)
    running = registry.get(key)
    if running is not None and not running.done:
        return running
    new = BackgroundJob(name=name, started_by=actor.username, label=label, meta=dict(meta or {}))
    registry[key] = new
    new.start(work)
    return new
