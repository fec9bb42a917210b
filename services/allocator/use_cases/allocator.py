"""What the allocator's use cases work with: settings, transactions, fleet, provisioner, relay, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry.trace import NoOpTracer, Tracer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.adapters.provisioner import Provisioner
from services.allocator.adapters.repository import SqlUnitOfWork, UnitOfWork
from services.allocator.domain.fleet import FleetConfig
from services.allocator.settings import AllocatorSettings

log = logging.getLogger(__name__)


class Relay(Protocol):
    """Publishes committed outbox rows (shared.outbox.OutboxRelay)."""

    async def publish_pending(self, limit: int = 500) -> int:
        """Publish what is pending; how many went out."""

    def notify(self) -> None:
        """Wake the background relay."""

    async def run(self, poll_interval_s: float = 1.0) -> None:
        """Relay until cancelled."""


@dataclass
class Allocator:
    """What the allocator's handlers work with; built once in `create_app`."""

    settings: AllocatorSettings
    sessions: async_sessionmaker[AsyncSession]
    fleet: FleetConfig
    provisioner: Provisioner
    relay: Relay
    metrics: AllocatorMetrics
    new_suffix: Callable[[], str]
    unit_of_work: UnitOfWork | None = None  # tests pass a fake; by default, transactions over `sessions`
    tracer: Tracer = field(default_factory=NoOpTracer)  # the service's own: spans of the provisioning work
    # Set when an action was planned: the provisioning worker wakes instead of waiting for its poll.
    work_ready: asyncio.Event = field(default_factory=asyncio.Event)
    # GPUs placements needed and did not find, per pool, since the cluster autoscaler's last round.
    shortfalls: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.units: UnitOfWork = self.unit_of_work or SqlUnitOfWork(self.sessions)

    async def publish(self) -> None:
        """Relay what was just committed now (the background relay retries whatever this misses)."""
        try:
            await self.relay.publish_pending()
        except Exception:
            log.exception("publishing the outbox failed; the relay will retry")
        self.relay.notify()
        await self.units.refresh_metrics(self.metrics)
