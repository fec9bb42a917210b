"""Kafka handlers of the monitor: typed event in, service call, wake the outbox relay."""

from __future__ import annotations

from collections.abc import Callable

from services.monitor.adapters.metrics import MonitorMetrics
from services.monitor.settings import MonitorSettings
from services.monitor.use_cases import recording
from services.monitor.use_cases.judging import Verdict
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    PRICES,
    SCALING_ACTIONS,
    AllocationEvent,
    DemandWindowReported,
    PricesPublished,
    ScalingActionEvent,
    ScalingActionOverdue,
)
from shared.runtime import Runtime
from shared.subscribe import inbox_consumer, subscribe


def register(runtime: Runtime, settings: MonitorSettings, metrics: MonitorMetrics, notify: Callable[[], None]) -> None:
    """Subscribe the monitor's handlers on the runtime's broker; `notify` wakes the outbox relay."""
    group, source, sessions = settings.group_id, settings.service_name, runtime.sessions

    def announce(verdict: Verdict) -> None:
        if verdict.alerts or verdict.signals:
            notify()

    async def on_allocation_changed(event: AllocationEvent) -> None:
        announce(await recording.on_allocation_changed(sessions, settings, inbox_consumer(), event))

    async def on_demand_window_reported(event: DemandWindowReported) -> None:
        announce(await recording.on_demand_window(sessions, settings, inbox_consumer(), event))
        if event.latency_p95_ms is not None:
            metrics.latency_p95_ms.labels(event.model_id, event.region).set(event.latency_p95_ms)

    async def on_prices_published(event: PricesPublished) -> None:
        await recording.on_prices_published(sessions, inbox_consumer(), event)

    async def on_scaling_action(event: ScalingActionEvent) -> None:
        # The topic also carries ScalingActionRequested, which is the allocator's business.
        if isinstance(event, ScalingActionOverdue):
            announce(await recording.on_scaling_action_overdue(sessions, settings, inbox_consumer(), event))

    subscribe(runtime.broker, ALLOCATIONS, group, on_allocation_changed, source=source)
    subscribe(runtime.broker, DEMAND, group, on_demand_window_reported, source=source)
    subscribe(runtime.broker, PRICES, group, on_prices_published, source=source)
    # Inbox rows already carry the name this handler had before it was renamed.
    subscribe(runtime.broker, SCALING_ACTIONS, group, on_scaling_action, source=source, inbox="monitor.on_overdue")
