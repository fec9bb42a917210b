"""Kafka handlers of the scaler: typed event in, service call, wake the relay; nothing else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.scaler import service
from services.scaler.worker import Worker
from shared.deadletter import subscribe
from shared.events import (
    ALLOCATIONS,
    DEMAND,
    MODEL_REQUESTS,
    SCALING_SIGNALS,
    SERVER_METRICS,
    DemandWindowReported,
    ModelRequested,
    ScalingSignalRaised,
    ServerMetricsReported,
)


def register(worker: Worker) -> None:
    """Subscribe the scaler's handlers on the runtime's broker."""
    runtime, settings = worker.runtime, worker.settings
    sessions, group, source = runtime.sessions, settings.group_id, settings.service_name

    # The inbox is keyed by handler, not by consumer group: renaming the group (or a second
    # deployment reading the topic) must not apply an event twice.
    async def on_demand_window_reported(event: DemandWindowReported) -> None:
        await service.record_demand_window(sessions, "scaler.on_demand_window_reported", event)

    async def on_server_metrics_reported(event: ServerMetricsReported) -> None:
        await service.record_server_metrics(sessions, "scaler.on_server_metrics_reported", event)

    async def on_scaling_signal_raised(event: ScalingSignalRaised) -> None:
        await service.record_signal(sessions, "scaler.on_scaling_signal_raised", event)

    async def on_model_requested(event: ModelRequested) -> None:
        action = await service.request_cold_start(
            sessions, "scaler.on_model_requested", event, settings.policy.value, datetime.now(UTC), uuid.uuid4().hex
        )
        if action is not None:
            worker.metrics.action(action)
            worker.relay.notify()

    async def on_allocation_changed(event: Any) -> None:
        await service.record_allocation(sessions, "scaler.on_allocation_changed", event, datetime.now(UTC))

    for topic, handler in (
        (DEMAND, on_demand_window_reported),
        (SERVER_METRICS, on_server_metrics_reported),
        (SCALING_SIGNALS, on_scaling_signal_raised),
        (MODEL_REQUESTS, on_model_requested),
        (ALLOCATIONS, on_allocation_changed),
    ):
        subscribe(runtime.broker, topic, group, handler, source=source)
