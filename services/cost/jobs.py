"""The cost service assembled over the shared runtime, and its jobs: the outbox relay, the cycle, retention."""

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
from shared.jobs import Job, periodic
from shared.retention import Kept, messaging
from shared.runtime import Runtime, ServiceApp


def retained(settings: CostSettings) -> tuple[Kept, ...]:
    """What retention prunes: inbox, sent outbox and reports (the cycle prunes its own inputs)."""
    return (*messaging(inbox, outbox, settings), Kept(cost_report, "created_at", settings.history_retention_s))


class CostApp(ServiceApp[CostSettings, CostMetrics]):
    """The cost service: its runtime, settings, metrics and relay; a cycle every `report_interval_s`."""

    def __init__(self, runtime: Runtime, settings: CostSettings) -> None:
        super().__init__(runtime, settings, CostMetrics(runtime.registry), outbox)

    def rounds(self) -> Sequence[Job]:
        """A cycle every `report_interval_s` (a cycle in progress at stop finishes)."""
        return (periodic("cost cycle", self.settings.report_interval_s, self.cycle_once),)

    def retained(self) -> Sequence[Kept]:
        """Inbox, sent outbox and reports."""
        return retained(self.settings)

    async def prepare(self) -> None:
        """Announce the prices (the relay's first round, which starts next, publishes them)."""
        await operations.publish_prices(self.runtime.sessions, self.settings.service_name, datetime.now(UTC))

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
