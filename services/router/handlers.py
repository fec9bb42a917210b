"""What an allocation event does to a running router: the registry changes, held requests move on."""

from __future__ import annotations

from services.router import service
from services.router.core import RouterCore
from shared.events import AllocationFailed, Event


async def on_allocation(core: RouterCore, event: Event, replayed: bool) -> None:
    """Apply the event to the in-memory registry, reject or release the held requests it concerns."""
    service.apply_allocation(core.dispatcher.registry, event)
    # A failure already in the log when this process started answered an earlier process's requests:
    # held requests here asked again (or will), so only a live failure rejects them.
    if isinstance(event, AllocationFailed) and not replayed:
        await core.reject_held(event.model_id, event.region, f"allocation failed: {event.reason}")
    # A placement and its server may arrive in either order: release once both are known.
    for model_id in list(core.hold.held):
        if core.dispatcher.registry.knows_model(model_id):
            core.release(model_id)
