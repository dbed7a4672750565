"""Backfill leases: at most one backfill per integration at a time, across processes.

A lease is a ``backfill_leases`` row per integration (and shard) naming its holder.
``acquire`` takes the rows of every integration of a run in one transaction (all or none); an
overlapping live lease held by someone else refuses the run with ``BackfillBusy`` naming the
holder and since when. The holder renews ``expires_at`` while it runs (``LeaseKeeper``);
after a crash (``kill -9``) nobody renews it, so it expires and the next run takes it over
(at once when the dead holder ran on this host: its process id is gone).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from linker.services.errors import Conflict
from linker.store import leases as leases_store
from linker.store.database import Database

_LOG = logging.getLogger(__name__)
LEASE_TTL_S = 60.0
"""A lease not renewed for this long is free to take."""


class BackfillBusy(Conflict):
    """Another backfill holds the lease of an integration of this run."""

    def __init__(self, integration: str, holder: str, since: datetime, expires: datetime) -> None:
        self.integration, self.holder, self.since = integration, holder, since
        super().__init__(
            f"a backfill of {integration} is already running: {holder} started it at "
            f"{since:%Y-%m-%d %H:%M:%S} UTC (its lease runs to {expires:%H:%M:%S} UTC unless "
            "renewed); wait for it to finish or stop it, then run again")


def holder_name(username: str) -> str:
    """Who holds a lease, for the refusal message: user, host and process id."""
    return f"{username[:100]} on {socket.gethostname()} (pid {os.getpid()})"


_HOLDER = re.compile(r" on (?P<host>\S+) \(pid (?P<pid>\d+)\)$")


def holder_is_dead(holder: str) -> bool:
    """True when the holder ran on this host and its process is gone (killed, crashed): its
    lease need not wait to expire. Holders on other hosts are never judged dead."""
    match = _HOLDER.search(holder)
    if match is None or match["host"] != socket.gethostname():
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


@dataclass(frozen=True)
class Lease:
    """The leases one run holds."""

    token: str
    integration_ids: tuple[int, ...]
    holder: str


def _overlaps(a: str, b: str) -> bool:
    """True when two shard specs (``""`` = everything, ``"I/N"`` a crc32 shard, ``"chunk I/N"``
    a chunk job of a run split into N) can share a profile: only parts of the same split
    (same kind and N, different I) are disjoint."""
    if not a or not b:
        return True
    (ka, ia, na), (kb, ib, nb) = (_parts(s) for s in (a, b))
    return ka != kb or na != nb or ia == ib


def _parts(spec: str) -> tuple[str, int, int]:
    kind, _, split = spec.rpartition(" ")
    index, count = (int(x) for x in split.split("/"))
    return kind, index, count


def shard_spec(shard: tuple[int, int] | None, *, chunk: tuple[int, int] | None = None) -> str:
    """The lease's shard column: ``""`` for a whole run, ``"I/N"`` for one shard,
    ``"chunk I/N"`` for chunk I of a run split into N chunk jobs."""
    if chunk is not None:
        return f"chunk {chunk[0]}/{chunk[1]}"
    return f"{shard[0]}/{shard[1]}" if shard else ""


def acquire(db: Database, integrations: Sequence[tuple[int, str]], holder: str,
            now: datetime, ttl_s: float = LEASE_TTL_S, shard: tuple[int, int] | None = None,
            *, chunk: tuple[int, int] | None = None) -> Lease:
    """Take the lease of every ``(id, name)`` integration for ``shard`` (None: all profiles)
    or ``chunk`` (chunk I of N of a run split into jobs), or none: raises BackfillBusy for the
    first integration where a live lease of another holder overlaps (whole run, the same
    part, or a part of another split). Parts of the same split (shards ``0/4``, ``1/4``, ...;
    chunks ``chunk 0/9``, ...) run side by side. Expired leases are removed."""
    token = secrets.token_hex(16)
    spec = shard_spec(shard, chunk=chunk)
    expires = now + timedelta(seconds=ttl_s)
    with db.session() as session:
        if not db.is_sqlite:  # SQLite write transactions are exclusive already
            leases_store.lock_lease_takers(session)
        for integration_id, name in sorted(integrations):
            leases_store.delete_expired(session, integration_id, now)
            for row in leases_store.leases_of(session, integration_id):
                if not _overlaps(row.shard, spec):
                    continue
                if holder_is_dead(row.holder):
                    leases_store.delete_lease_row(session, row)
                    continue
                raise BackfillBusy(name, row.holder, row.acquired_at, row.expires_at)
            leases_store.add_lease(session, integration_id, spec, token, holder, now, expires)
    return Lease(token, tuple(sorted(i for i, _ in integrations)), holder)


def renew(db: Database, lease: Lease, now: datetime, ttl_s: float = LEASE_TTL_S) -> bool:
    """Push the lease's expiry to ``now + ttl_s``; False when it was lost (taken over)."""
    with db.session() as session:
        held = leases_store.renew_token(session, lease.token, now + timedelta(seconds=ttl_s))
        return held == len(lease.integration_ids)


def release(db: Database, lease: Lease) -> None:
    """Give the lease up (only rows this run still holds)."""
    with db.session() as session:
        leases_store.delete_token(session, lease.token)


class LeaseKeeper:
    """Renews a lease every ``ttl_s / 3`` seconds in a daemon thread while a run goes on;
    ``lost`` is set when a renewal finds the lease gone. Releases it on exit."""

    def __init__(self, db: Database, lease: Lease, now: Callable[[], datetime],
                 ttl_s: float = LEASE_TTL_S) -> None:
        self.db, self.lease, self.now, self.ttl_s = db, lease, now, ttl_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_until_stopped, daemon=True,
                                        name="linker-backfill-lease")

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=self.ttl_s)
        release(self.db, self.lease)

    def renew_now(self) -> bool:
        """Renew once; sets ``lost`` and returns False when the lease is gone."""
        try:
            if renew(self.db, self.lease, self.now(), self.ttl_s):
                return True
        except Exception as exc:  # retried at the next tick; the lease may still expire
            _LOG.warning("could not renew the backfill lease of integrations %s: %s",
                         self.lease.integration_ids, exc)
            return True
        self.lost.set()
        return False

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            if not self.renew_now():
                return
