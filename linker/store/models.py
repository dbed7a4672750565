"""SQLAlchemy 2.x tables. Uniqueness the product promises is enforced here, by the database.

- one link per (customer, integration); one customer per (integration, external id);
- email values and MOBILE phone values unique across profiles (normalised forms);
- integration names unique case-insensitively (``name_key`` is the lower-cased name).

Secrets (password, signing key, secret header values) are stored only encrypted (``*_enc``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model (for Core statements on a session's connection: no ORM work,
    for hot paths)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base of every Linker table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON
    }


class Customer(Base):
    """A local customer profile."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(500), default="")
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    emails: Mapped[list[CustomerEmail]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerEmail.position"
    )
    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="CustomerPhone.position"
    )
    links: Mapped[list[Link]] = relationship(back_populates="customer")


class CustomerEmail(Base):
    """One email of a profile; ``normalized`` is unique across all profiles."""

    __tablename__ = "customer_emails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"),
                                             index=True)
    original: Mapped[str] = mapped_column(String(320))
    normalized: Mapped[str] = mapped_column(String(320), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(100), default="")
    """Empty when entered locally, else the name of the integration it was pulled from."""

    customer: Mapped[Customer] = relationship(back_populates="emails")


class CustomerPhone(Base):
    """One phone of a profile, stored as E.164; ``mobile_key`` makes MOBILE values unique."""

    __tablename__ = "customer_phones"
    __table_args__ = (UniqueConstraint("customer_id", "e164", name="uq_phone_per_customer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"),
                                             index=True)
    original: Mapped[str] = mapped_column(String(64))
    e164: Mapped[str] = mapped_column(String(20), index=True)
    type: Mapped[str] = mapped_column(String(10), default="MOBILE")
    mobile_key: Mapped[str | None] = mapped_column(String(20), unique=True, nullable=True)
    """Equals ``e164`` for MOBILE phones and is NULL otherwise (NULLs never collide)."""
    position: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(100), default="")

    customer: Mapped[Customer] = relationship(back_populates="phones")


class Integration(Base):
    """One external system behind one lookup adaptor URL."""

    __tablename__ = "integrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    username: Mapped[str] = mapped_column(String(200), default="")
    password_enc: Mapped[str] = mapped_column(Text, default="")
    realm: Mapped[str] = mapped_column(String(200), default="")
    signing_key_enc: Mapped[str] = mapped_column(Text, default="")
    headers: Mapped[list[Any]] = mapped_column(default=list)
    """Rows ``{"name", "value" | "value_enc", "secret": bool}``; secret values encrypted."""
    search_query_attributes: Mapped[list[Any]] = mapped_column(default=list)
    """Rows ``{"attribute", "label"}``."""
    search_results_attributes: Mapped[list[Any]] = mapped_column(default=list)
    autolink_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    autolink_fields: Mapped[list[Any]] = mapped_column(default=list)
    """Subset of ``["email", "mobile"]``."""
    overwrite_existing: Mapped[bool] = mapped_column(Boolean, default=False)
    timeout_s: Mapped[float] = mapped_column(Float, default=5.0)
    max_concurrent_requests: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Most requests in flight to the adaptor at once, all processes together (None: no cap)."""
    max_requests_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Most requests started per second, all processes together (None: no cap)."""
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Link(Base):
    """(customer, integration) → external customer id, and how it was made."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("customer_id", "integration_id", name="uq_link_customer_integration"),
        UniqueConstraint("integration_id", "external_customer_id", name="uq_link_external_id"),
        Index("ix_links_integration", "integration_id", "method"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE")
    )
    external_customer_id: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(10))
    """``auto`` or ``manual``."""
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    customer: Mapped[Customer] = relationship(back_populates="links")
    integration: Mapped[Integration] = relationship()


class PulledData(Base):
    """What the last successful DETAILED lookup returned for a (customer, integration)."""

    __tablename__ = "pulled_data"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    address: Mapped[str | None] = mapped_column(String(500), nullable=True)
    custom_attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    transactions: Mapped[list[Any]] = mapped_column(default=list)
    dropped: Mapped[list[Any]] = mapped_column(default=list)
    """Emails/phones the adaptor returned that another profile holds: ``{"value", "reason"}``."""
    fetched_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    exchange_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Suppression(Base):
    """Auto-linking suppressed for a (customer, integration) after an unlink."""

    __tablename__ = "suppressions"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExchangeRecord(Base):
    """One stored adaptor exchange (already redacted by the lookup client)."""

    __tablename__ = "exchanges"
    __table_args__ = (
        # The log is read newest first by keyset (started_at, id): each filter's index ends in
        # those two columns so a page is an index range scan (migration 0002).
        Index("ix_exchanges_time_id", "started_at", "id"),
        Index("ix_exchanges_integration_time_id", "integration_id", "started_at", "id"),
        Index("ix_exchanges_customer_time_id", "customer_id", "started_at", "id"),
        Index("ix_exchanges_trigger_time_id", "trigger", "started_at", "id"),
        Index("ix_exchanges_error_time_id", "error_kind", "started_at", "id"),
        Index("ix_exchanges_status_time_id", "response_status", "started_at", "id"),
        Index("ix_exchanges_correlation", "correlation_id"),
        # the health overview reads only these columns of a time range (migration 0007)
        Index("ix_exchanges_health", "started_at", "integration_id", "error_kind",
              "elapsed_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="SET NULL"), nullable=True
    )
    integration_name: Mapped[str] = mapped_column(String(100), default="")
    customer_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(100), default="")
    kind: Mapped[str] = mapped_column(String(20))
    trigger: Mapped[str] = mapped_column(String(20))
    correlation_id: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column()
    elapsed_ms: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(10))
    url: Mapped[str] = mapped_column(String(2000))
    request_headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request_body: Mapped[str] = mapped_column(Text, default="")
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when a body was cut to the storage cap (256 KiB) or at the read cap."""
    error_kind: Mapped[str | None] = mapped_column(String(20), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    violations: Mapped[list[Any]] = mapped_column(default=list)
    result_count: Mapped[int] = mapped_column(Integer, default=0)
    replay_of: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AutolinkOutcome(Base):
    """The recorded result of one auto-link attempt."""

    __tablename__ = "autolink_outcomes"
    __table_args__ = (
        Index("ix_outcomes_integration_outcome", "integration_id", "outcome"),
        Index("ix_outcomes_customer_integration", "customer_id", "integration_id", "created_at"),
        Index("ix_outcomes_created", "created_at"),
        Index("ix_outcomes_integration_customer", "integration_id", "customer_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE")
    )
    outcome: Mapped[str] = mapped_column(String(20))
    """linked, no_match, ambiguous, no_field_match, conflict, suppressed, skipped, error."""
    reason: Mapped[str] = mapped_column(Text, default="")
    external_customer_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    candidates: Mapped[int] = mapped_column(Integer, default=0)
    exchange_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trigger: Mapped[str] = mapped_column(String(20), default="")
    """What ran the attempt: customer_created, profile_opened, backfill, debugger."""
    actor: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Who changed what, when, with before and after."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_at", "at"), Index("ix_audit_entity", "entity_type",
                                                        "entity_id"),
                      # keyset pages newest first, also when filtered (migration 0007)
                      Index("ix_audit_at_id", "at", "id"),
                      Index("ix_audit_actor_at_id", "actor", "at", "id"),
                      Index("ix_audit_action_at_id", "action", "at", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(50))
    entity_type: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[str] = mapped_column(String(100))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class User(Base):
    """A built-in account; the password is stored as an Argon2id hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConformanceRun(Base):
    """One run of the conformance checks against an adaptor: its report card."""

    __tablename__ = "conformance_runs"
    __table_args__ = (Index("ix_conformance_integration_time", "integration_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), nullable=True
    )
    integration_name: Mapped[str] = mapped_column(String(100), default="")
    url: Mapped[str] = mapped_column(String(2000))
    actor: Mapped[str] = mapped_column(String(100), default="")
    started_at: Mapped[datetime] = mapped_column()
    elapsed_ms: Mapped[float] = mapped_column(Float, default=0.0)
    passed: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when no required check failed."""
    checks: Mapped[list[Any]] = mapped_column(default=list)
    """Rows ``{"name", "title", "status", "required", "message", "exchange_id"}``."""
    p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    """The p95 latency over the run's calls (NULL on cards stored before it was kept)."""


class ProbeSetting(Base):
    """An integration's scheduled conformance probe: its settings, when the last probe
    started (the claim that keeps two runners off one integration) and its report card."""

    __tablename__ = "probe_settings"

    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    every_minutes: Mapped[int] = mapped_column(Integer, default=15)
    p95_slo_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    known_email: Mapped[str] = mapped_column(String(320), default="")
    known_phone: Mapped[str | None] = mapped_column(String(40), nullable=True)
    last_started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("conformance_runs.id", ondelete="SET NULL"), nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100), default="")


class BackfillProgress(Base):
    """Which (customer, integration) pairs a backfill run has done, so a re-run resumes."""

    __tablename__ = "backfill_progress"

    run_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    done_at: Mapped[datetime] = mapped_column(default=utcnow)


class BackfillRun(Base):
    """A backfill running in a process (a whole run, the chunks of one run, or one shard):
    what, who and since when, how far, and whether it was asked to stop. The process renews
    ``heartbeat_at``; a row whose heartbeat is stale belongs to a dead process."""

    __tablename__ = "backfill_runs"

    run: Mapped[str] = mapped_column(String(32), primary_key=True)
    integrations: Mapped[str] = mapped_column(String(400))
    """The integrations' names, comma-separated (for display)."""
    part: Mapped[str] = mapped_column(String(40))
    """``""`` a whole run, ``chunks`` its chunks one after another, ``I/N`` one shard."""
    holder: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column()
    heartbeat_at: Mapped[datetime] = mapped_column()
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    counts: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True, default=None)
    """Outcome → how many so far (renewed after every batch; None before the first)."""


class SignInThrottle(Base):
    """Failed sign-ins of one account (``account:<name>``) or client (``client:<address>``),
    and until when further attempts are refused. Kept in the database so every dashboard
    process sees the same counts."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column(nullable=True)


class BackfillLease(Base):
    """Who runs a backfill over an integration (or one shard of it, ``I/N``; empty: all of
    it). The holder renews ``expires_at`` while it runs; a crashed holder's lease expires."""

    __tablename__ = "backfill_leases"

    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[str] = mapped_column(String(40), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))
    holder: Mapped[str] = mapped_column(String(200))
    """Who and where: ``<user> on <host> (pid <n>)``."""
    acquired_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class ConsoleSession(Base):
    """A signed-in console session that survives a browser reload: the SHA-256 of the random
    token kept in the browser's cookie (never the token itself), whose it is, and until when."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(200), index=True)
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class AdaptorSlot(Base):
    """One of an integration's ``max_concurrent_requests`` slots (PostgreSQL deployments): held
    by ``holder`` until ``expires_at`` while a request is in flight; free when NULL or past."""

    __tablename__ = "adaptor_slots"

    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), default="", server_default="")
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AdaptorPacing(Base):
    """When the next request to an integration may start (PostgreSQL deployments): the
    ``max_requests_per_second`` schedule shared by every process."""

    __tablename__ = "adaptor_pacing"

    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    next_at: Mapped[datetime] = mapped_column()
