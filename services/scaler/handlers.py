"""Kafka handlers of the scaler: typed event in, use case call, wake the relay; nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.scaler.jobs import ScalerApp
from services.scaler.use_cases import cold_starts, recording
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    MODEL_REQUESTS,
    SCALING_SIGNALS,
    SERVER_METRICS,
    AllocationEvent,
    AllocationFailed,
    DemandWindowReported,
    ModelRequested,
    ScalingSignalRaised,
    ServerMetricsReported,
)
from shared.subscribe import inbox_consumer


def register(app: ScalerApp) -> None:
    """Subscribe the scaler's handlers on the runtime's broker."""
    sessions, settings = app.runtime.sessions, app.settings

    # The inbox is keyed by handler, not by consumer group: renaming the group (or a second
    # deployment reading the topic) must not apply an event twice.
    async def on_demand_window_reported(event: DemandWindowReported) -> None:
        await recording.record_demand_window(sessions, inbox_consumer(), event)

    async def on_server_metrics_reported(event: ServerMetricsReported) -> None:
        await recording.record_server_metrics(sessions, inbox_consumer(), event)

    async def on_scaling_signal_raised(event: ScalingSignalRaised) -> None:
        await recording.record_signal(sessions, inbox_consumer(), event)

    async def on_model_requested(event: ModelRequested) -> None:
        action = await cold_starts.request_cold_start(
            sessions, inbox_consumer(), event, settings.policy.value, datetime.now(UTC), uuid.uuid4().hex,
            settings.backoff,
        )  # fmt: skip
        if action is not None:
            app.metrics.action(action)
            app.relay.notify()

    async def on_allocation_changed(event: AllocationEvent) -> None:
        if not await recording.record_allocation(
            sessions, inbox_consumer(), event, datetime.now(UTC), settings.backoff
        ):
            return
        if isinstance(event, AllocationFailed):
            app.metrics.refused(event.model_id, event.region)
        app.relay.notify()  # a capacity alert may be in the outbox

    app.subscribe(DEMAND, on_demand_window_reported)
    app.subscribe(SERVER_METRICS, on_server_metrics_reported)
    app.subscribe(SCALING_SIGNALS, on_scaling_signal_raised)
    app.subscribe(MODEL_REQUESTS, on_model_requested)
    app.subscribe(ALLOCATIONS, on_allocation_changed)
