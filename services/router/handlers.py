"""What an allocation event does to a running router: the registry changes, held requests move on."""

from __future__ import annotations

from services.router.hotpath.pipeline import RouterCore
from services.router.use_cases import allocations as service
from shared.events import AllocationFailed, Event


async def on_allocation(core: RouterCore, event: Event, replayed: bool) -> None:
    """Apply the event to the in-memory registry, reject or release the held requests it concerns."""
    core.change_registry(lambda registry: service.apply_allocation(registry, event))
    # A failure already in the log when this process started answered an earlier process's requests:
    # held requests here asked again (or will), so only a live failure rejects them.
    if isinstance(event, AllocationFailed) and not replayed:
        await core.reject_held(event.model_id, event.region, f"allocation failed: {event.reason}")
