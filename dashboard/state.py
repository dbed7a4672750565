"""Cached services, cached read models, cache clearing after writes, flash messages and
background jobs, for every page.

Usage in a page::

    from dashboard import state
    actor = require(Permission.VIEW_INTEGRATIONS, page="integrations")
    rows = state.integration_list(actor)                # cached 30 s, per database and actor
    view = state.read(actor, "customers", "get", cid)   # any read method, cached the same way
    svc = state.services()                               # for writes and uncached calls
    svc.integrations.create(actor, spec)
    state.done("Saved Shop")                             # clear read caches, flash, rerun

Rules: reads go through ``read`` (or a typed wrapper below); every write is followed by
``changed()`` (``done`` does it), so no page shows stale data after its own change. Long work
(a backfill) runs as a ``start_job`` background job the page polls with ``job(name)``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, cast

import streamlit as st

from linker.config import Settings
from linker.services.autolinking import OutcomeCounts, OutcomeView
from linker.services.facade import Services
from linker.services.integrations import IntegrationView
from linker.services.permissions import Actor, Role
from linker.services.reports import IntegrationHealth

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


# -- read models ------------------------------------------------------------------------------


@st.cache_data(ttl=READ_TTL_S, show_spinner=False, max_entries=1000)
def _read(_services: Services, database_url: str, username: str, role: str, service: str,
          method: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    target = getattr(getattr(_services, service), method)
    return target(Actor(username, Role(role)), *args, **dict(kwargs))


def read(actor: Actor, service: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """``services().<service>.<method>(actor, *args, **kwargs)``, cached for ``READ_TTL_S``
    per database, actor and arguments (arguments must be hashable: str, int, datetime, tuple).

    Only for reads that return plain views; service errors are raised as usual (and not
    cached).
    """
    current = settings()
    return _read(_services_for(current.database_url, current), current.database_url,
                 actor.username, actor.role.value, service, method, args,
                 tuple(sorted(kwargs.items())))


def integration_list(actor: Actor) -> list[IntegrationView]:
    """Every integration (no secrets), cached."""
    return cast(list[IntegrationView], read(actor, "integrations", "list"))


def integration_health(actor: Actor) -> list[IntegrationHealth]:
    """Health of every integration over the last 24 h, cached."""
    return cast(list[IntegrationHealth], read(actor, "reports", "health"))


def recent_outcomes(actor: Actor, *, integration_id: int | None, outcome: str | None,
                    window: str, limit: int = 200) -> list[OutcomeView]:
    """The newest auto-link outcomes, filtered, cached (``window`` as for ``since``)."""
    return cast(list[OutcomeView], read(actor, "autolink", "recent_outcomes",
                                        integration_id=integration_id, outcome=outcome,
                                        since=since(window), limit=limit))


def outcome_counts(actor: Actor, window: str) -> OutcomeCounts:
    """Auto-link attempts per outcome and integration in ``window``, cached."""
    return cast(OutcomeCounts, read(actor, "autolink", "outcome_counts", since(window)))


def changed() -> None:
    """Call after every write: drops every cached read model so the next run reads afresh."""
    st.cache_data.clear()


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


def done(message: str | None = None, kind: FlashKind = "success") -> NoReturn:
    """After a write: clear the read caches, flash ``message``, and rerun the app."""
    changed()
    if message:
        flash(message, kind)
    st.rerun()


def reset_widgets(prefix: str) -> None:
    """Forget the values of every widget whose key starts with ``prefix`` (e.g. a form after a
    successful save), so they start again from their defaults on the next run."""
    for key in [k for k in st.session_state if str(k).startswith(prefix)]:
        del st.session_state[key]


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
