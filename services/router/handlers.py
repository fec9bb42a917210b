"""What an allocation event does to a running router: the registry changes, held requests move on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from services.router.domain.registry import Registry
from services.router.use_cases import allocations
from shared.events import AllocationFailed, Event


class Serving(Protocol):
    """What an allocation event may change in a running router (the hot path's `RouterCore` is one)."""

    def change_registry(self, change: Callable[[Registry], None]) -> None:
        """Apply a change to the server registry; held requests a server can now take move on."""
        ...

    async def reject_held(self, model_id: str, region: str | None, reason: str) -> None:
        """The model cannot come: reject its held requests with the reason."""
        ...


async def on_allocation(serving: Serving, event: Event, replayed: bool) -> None:
    """Apply the event to the in-memory registry, reject or release the held requests it concerns."""
    serving.change_registry(lambda registry: allocations.apply_allocation(registry, event))
    # A failure already in the log when this process started answered an earlier process's requests:
    # held requests here asked again (or will), so only a live failure rejects them.
    if isinstance(event, AllocationFailed) and not replayed:
        await serving.reject_held(event.model_id, event.region, f"allocation failed: {event.reason}")
