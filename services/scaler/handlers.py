"""Kafka handlers of the scaler: typed event in, use case call, wake the relay; nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.scaler.jobs import Worker
from services.scaler.use_cases import cold_starts, recording
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    MODEL_REQUESTS,
    SCALING_SIGNALS,
    SERVER_METRICS,
    AllocationEvent,
    DemandWindowReported,
    ModelRequested,
    ScalingSignalRaised,
    ServerMetricsReported,
)
from shared.subscribe import inbox_consumer, subscribe


def register(worker: Worker) -> None:
    """Subscribe the scaler's handlers on the runtime's broker."""
    runtime, settings = worker.runtime, worker.settings
    sessions, group, source = runtime.sessions, settings.group_id, settings.service_name

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
            sessions, inbox_consumer(), event, settings.policy.value, datetime.now(UTC), uuid.uuid4().hex
        )
        if action is not None:
            worker.metrics.action(action)
            worker.relay.notify()

    async def on_allocation_changed(event: AllocationEvent) -> None:
        await recording.record_allocation(sessions, inbox_consumer(), event, datetime.now(UTC))

    broker = runtime.broker
    subscribe(broker, DEMAND, group, on_demand_window_reported, source=source)
    subscribe(broker, SERVER_METRICS, group, on_server_metrics_reported, source=source)
    subscribe(broker, SCALING_SIGNALS, group, on_scaling_signal_raised, source=source)
    subscribe(broker, MODEL_REQUESTS, group, on_model_requested, source=source)
    subscribe(broker, ALLOCATIONS, group, on_allocation_changed, source=source)
