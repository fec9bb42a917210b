"""The cost service's background work: the outbox relay and the scheduled cycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Literal

from services.cost import operations, reporting
from services.cost.adapters.metrics import CostMetrics
from services.cost.adapters.orm import outbox
from services.cost.settings import CostSettings
from shared.outbox import OutboxRelay
from shared.runtime import Runtime

log = logging.getLogger(__name__)


class Worker:
    """Relays the outbox and runs a cycle every `report_interval_s`; started after the broker."""

    def __init__(self, runtime: Runtime, settings: CostSettings, metrics: CostMetrics) -> None:
        self.runtime = runtime
        self.settings = settings
        self.metrics = metrics
        self.relay = OutboxRelay(runtime.sessions, outbox, runtime.broker)
        self._stopping = asyncio.Event()
        self._schedule_task: asyncio.Task[None] | None = None
        self._relay_task: asyncio.Task[None] | None = None

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

    async def _schedule(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.report_interval_s)
                return
            try:
                await self.cycle_once()
            except Exception:
                log.exception("cost cycle failed; next one in %ss", self.settings.report_interval_s)

    async def start(self) -> None:
        """Announce the prices, then relay and schedule in the background."""
        await operations.publish_prices(self.runtime.sessions, self.settings.service_name, datetime.now(UTC))
        self._stopping.clear()
        self._schedule_task = asyncio.create_task(self._schedule())
        self._relay_task = asyncio.create_task(self.relay.run(0.5))
        self.relay.notify()

    async def stop(self) -> None:
        """Let a running cycle finish (cancelled mid-transaction it could hold locks), then stop relaying."""
        self._stopping.set()
        if self._schedule_task is not None:
            # wait_for cancels the task itself if the grace runs out
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._schedule_task, 30.0)
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        self._schedule_task = self._relay_task = None
