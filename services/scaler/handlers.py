"""Kafka handlers of the scaler: typed event in, service call, nothing else."""

from __future__ import annotations

from services.scaler import service
from shared.deadletter import subscribe
from shared.events import DEMAND, DemandWindowReported
from shared.runtime import Runtime


def register(runtime: Runtime) -> None:
    """Subscribe the scaler's handlers on the runtime's broker."""
    group = runtime.settings.group_id

    async def on_demand_window_reported(event: DemandWindowReported) -> None:
        # The inbox is keyed by handler, not by consumer group: renaming the group (or a second
        # deployment reading the topic) must not apply an event twice.
        await service.record_demand_window(runtime.sessions, "scaler.on_demand_window_reported", event)

    subscribe(runtime.broker, DEMAND, group, on_demand_window_reported, source=runtime.settings.service_name)
