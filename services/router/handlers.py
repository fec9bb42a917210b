"""Kafka handlers of the router's control plane: allocation events update the server registry."""

from __future__ import annotations

from services.router import service
from services.router.core import RouterCore
from shared.deadletter import subscribe
from shared.events import ALLOCATIONS, AllocationFailed, Event
from shared.runtime import Runtime


def register(runtime: Runtime, core: RouterCore, instance_id: str) -> None:
    """Subscribe to allocation events; every replica reads them all (its own group) to know every server."""
    group = f"{runtime.settings.group_id}-registry-{instance_id}"
    consumer = f"router-{instance_id}.on_allocation_changed"[:100]

    async def on_allocation_changed(event: Event) -> None:
        """Persist the registry change once, apply it in memory, release or reject held requests."""
        await service.record_allocation(runtime.sessions, consumer, event)
        service.apply_allocation(core.dispatcher.registry, event)
        if isinstance(event, AllocationFailed):
            await core.reject_held(event.model_id, event.region, f"allocation failed: {event.reason}")
        # A placement and its server may arrive in either order: release once both are known.
        for model_id in list(core.hold.held):
            if core.dispatcher.registry.knows_model(model_id):
                core.release(model_id)

    subscribe(runtime.broker, ALLOCATIONS, group, on_allocation_changed, source=runtime.settings.service_name)
