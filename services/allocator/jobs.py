"""The allocator's jobs: the outbox relay and retention, run by the shared runtime."""

from __future__ import annotations

from collections.abc import Sequence

from services.allocator.adapters.orm import inbox, outbox
from services.allocator.settings import AllocatorSettings
from services.allocator.use_cases.allocator import Allocator
from shared import runtime as shared_runtime
from shared.jobs import Job, loop
from shared.retention import Kept, messaging, retention_job


def retained(settings: AllocatorSettings) -> tuple[Kept, ...]:
    """What retention prunes: the inbox and sent outbox rows (the rest is live inventory and actions)."""
    return messaging(inbox, outbox, settings)


class Worker(shared_runtime.Worker):
    """Relays the allocator's outbox and prunes old rows; started after the broker."""

    def __init__(self, allocator: Allocator) -> None:
        super().__init__()
        self.allocator = allocator
        self.settings = allocator.settings

    def jobs(self) -> Sequence[Job]:
        """The outbox relay, and retention."""
        relay, settings = self.allocator.relay, self.settings
        return (
            loop("allocator outbox relay", lambda: relay.run(settings.relay_poll_interval_s)),
            retention_job(self.allocator.sessions, settings, retained(settings)),
        )

    async def prepare(self) -> None:
        """Export the inventory gauges before the first event arrives."""
        await self.allocator.metrics.refresh(self.allocator.sessions)
