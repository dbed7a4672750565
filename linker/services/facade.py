"""One object holding every service, for the dashboard and the CLI."""

from __future__ import annotations

from linker.config import Settings
from linker.services.audit_log import AuditLogService
from linker.services.autolinking import AutolinkService
from linker.services.backfill import BackfillService
from linker.services.backfill_jobs import BackfillJobs
from linker.services.conformance import ConformanceService
from linker.services.console_sessions import ConsoleSessionService
from linker.services.context import ServiceContext
from linker.services.coverage import CoverageService
from linker.services.customers import CustomerService
from linker.services.debugger import DebuggerService
from linker.services.exchange_log import ExchangeLogService
from linker.services.exchanges import ExchangeService
from linker.services.health import HealthService
from linker.services.integrations import IntegrationService
from linker.services.linking import LinkingService
from linker.services.probes import ProbeService
from linker.services.profile import ProfileService
from linker.services.refresh import RefreshService
from linker.services.replay import ReplayService
from linker.services.reports import ReportService
from linker.services.users import UserService
from linker.services.why import WhyService


class Services:
    """Every use case of Linker, sharing one context (database, secrets, client, clock)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.customers = CustomerService(ctx)
        self.integrations = IntegrationService(ctx)
        self.users = UserService(ctx)
        self.linking = LinkingService(ctx)
        self.refresh = RefreshService(ctx)
        self.profiles = ProfileService(ctx)
        self.autolink = AutolinkService(ctx)
        self.why = WhyService(ctx)
        self.backfill = BackfillService(ctx)
        self.backfill_jobs = BackfillJobs(ctx)
        self.reports = ReportService(ctx)
        self.exchanges = ExchangeService(ctx)
        self.exchange_log = ExchangeLogService(ctx)
        self.replay = ReplayService(ctx)
        self.conformance = ConformanceService(ctx)
        self.debugger = DebuggerService(ctx)
        self.console_sessions = ConsoleSessionService(ctx)
        self.health = HealthService(ctx)
        self.probes = ProbeService(ctx)
        self.coverage = CoverageService(ctx)
        self.audit_log = AuditLogService(ctx)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Services:
        """Services on the configured database (migrated on first use)."""
        return cls(ServiceContext.from_settings(settings))
