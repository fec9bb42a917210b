"""Kafka handlers of the monitor: typed event in, service call, wake the outbox relay."""

from __future__ import annotations

from services.monitor.jobs import MonitorApp
from services.monitor.use_cases import recording
from services.monitor.use_cases.judging import Verdict
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    PRICES,
    SCALING_ACTIONS,
    USAGE,
    AllocationEvent,
    DemandWindowReported,
    PricesPublished,
    ScalingActionEvent,
    ScalingActionOverdue,
    UsageMetered,
)
from shared.subscribe import inbox_consumer


def register(app: MonitorApp) -> None:
    """Subscribe the monitor's handlers on the runtime's broker; a verdict with news wakes the outbox relay."""
    sessions, settings = app.runtime.sessions, app.settings

    def announce(verdict: Verdict) -> None:
        if verdict.alerts or verdict.signals:
            app.relay.notify()

    async def on_allocation_changed(event: AllocationEvent) -> None:
        announce(await recording.on_allocation_changed(sessions, settings, inbox_consumer(), event))

    async def on_demand_window_reported(event: DemandWindowReported) -> None:
        announce(await recording.on_demand_window(sessions, settings, inbox_consumer(), event))
        if event.latency_p95_ms is not None:
            app.metrics.latency_p95_ms.labels(event.model_id, event.region).set(event.latency_p95_ms)

    async def on_prices_published(event: PricesPublished) -> None:
        await recording.on_prices_published(sessions, inbox_consumer(), event)

    async def on_scaling_action(event: ScalingActionEvent) -> None:
        # The topic also carries ScalingActionRequested, which is the allocator's business.
        if isinstance(event, ScalingActionOverdue):
            announce(await recording.on_scaling_action_overdue(sessions, settings, inbox_consumer(), event))

    app.subscribe(ALLOCATIONS, on_allocation_changed)
    app.subscribe(DEMAND, on_demand_window_reported)
    app.subscribe(PRICES, on_prices_published)

    async def on_usage_metered(event: UsageMetered) -> None:
        announce(await recording.on_usage_metered(sessions, settings, inbox_consumer(), event))

    app.subscribe(USAGE, on_usage_metered)
    # Inbox rows already carry the name this handler had before it was renamed.
    app.subscribe(SCALING_ACTIONS, on_scaling_action, inbox="monitor.on_overdue")
