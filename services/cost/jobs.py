"""The cost service's jobs: the outbox relay, the scheduled cycle and retention, run by the shared runtime."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from services.cost.adapters.metrics import CostMetrics
from services.cost.adapters.orm import cost_report, inbox, outbox
from services.cost.settings import CostSettings
from services.cost.use_cases import operations, reporting
from shared import runtime as shared_runtime
from shared.jobs import Job, loop, periodic
from shared.outbox import OutboxRelay
from shared.retention import Kept, messaging, retention_job
from shared.runtime import Runtime


def retained(settings: CostSettings) -> tuple[Kept, ...]:
    """What retention prunes: inbox, sent outbox and reports (the cycle prunes its own inputs)."""
    return (*messaging(inbox, outbox, settings), Kept(cost_report, "created_at", settings.history_retention_s))


class Worker(shared_runtime.Worker):
    """Relays the outbox and runs a cycle every `report_interval_s`; started after the broker."""

    def __init__(self, runtime: Runtime, settings: CostSettings, metrics: CostMetrics) -> None:
        super().__init__()
        self.runtime = runtime
        self.settings = settings
        self.metrics = metrics
        self.relay = OutboxRelay(runtime.sessions, outbox, runtime.broker)

    def jobs(self) -> Sequence[Job]:
        """The relay, a cycle every `report_interval_s` (a cycle in progress at stop finishes), and retention."""
        return (
            loop("cost outbox relay", lambda: self.relay.run(0.5)),
            periodic("cost cycle", self.settings.report_interval_s, self.cycle_once),
            retention_job(self.runtime.sessions, self.settings, retained(self.settings)),
        )

    async def prepare(self) -> None:
        """Announce the prices (the relay publishes them once it starts)."""
        await operations.publish_prices(self.runtime.sessions, self.settings.service_name, datetime.now(UTC))
        self.relay.notify()

    def context(
        self, trigger: Literal["schedule", "on_demand"] = "schedule", requested_by: str | None = None
    ) -> reporting.CycleContext:
        """A cycle's clock, id and knobs, taken now."""
        return reporting.CycleContext(
            now=datetime.now(UTC),
            report_id=str(uuid.uuid4()),
            source=self.settings.service_name,
            params=self.settings.params(),
            lookback_s=self.settings.demand_lookback_s,
            trigger=trigger,
            requested_by=requested_by,
        )

    def reflect(self, result: reporting.CycleResult | None, started: float) -> None:
        """Update metrics after a cycle and wake the relay."""
        if result is not None:
            self.metrics.observe(result, time.perf_counter() - started)
            self.relay.notify()

    async def cycle_once(self) -> reporting.CycleResult | None:
        """One scheduled cycle now (None when another replica holds the turn)."""
        started = time.perf_counter()
        result = await reporting.run_cycle(self.runtime.sessions, self.context())
        self.reflect(result, started)
        return result
