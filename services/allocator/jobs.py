"""The allocator assembled over the shared runtime, and its jobs: the outbox relay and retention."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from services.allocator.adapters.config import load_fleet
from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.adapters.orm import inbox, outbox
from services.allocator.adapters.provisioner import Provisioner
from services.allocator.settings import AllocatorSettings
from services.allocator.use_cases.allocator import Allocator
from shared.retention import Kept, messaging
from shared.runtime import Runtime, ServiceApp


def retained(settings: AllocatorSettings) -> tuple[Kept, ...]:
    """What retention prunes: the inbox and sent outbox rows (the rest is live inventory and actions)."""
    return messaging(inbox, outbox, settings)


class AllocatorApp(ServiceApp[AllocatorSettings, AllocatorMetrics]):
    """The allocator: its runtime, settings, metrics and relay, and `allocator`, what its use cases work with."""

    def __init__(self, runtime: Runtime, settings: AllocatorSettings, provisioner: Provisioner) -> None:
        metrics = AllocatorMetrics(runtime.registry)
        super().__init__(runtime, settings, metrics, outbox, relay_poll_s=settings.relay_poll_interval_s)
        self.allocator = Allocator(
            settings=settings,
            sessions=runtime.sessions,
            fleet=load_fleet(settings.fleet_config),
            provisioner=provisioner,
            relay=self.relay,
            metrics=metrics,
            new_suffix=lambda: uuid.uuid4().hex[:8],
        )

    def retained(self) -> Sequence[Kept]:
        """The inbox and sent outbox rows."""
        return retained(self.settings)

    async def prepare(self) -> None:
        """Export the inventory gauges before the first event arrives."""
        await self.metrics.refresh(self.runtime.sessions)
