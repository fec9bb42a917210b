"""Servers that others announce on the allocations topic (a benchmark, another deployment, a script).

The allocator watches them so that its reconciler can retire one that stops answering: otherwise
a server announced and never released stays in every consumer's registry (the router kept
health-checking 2,000 stale benchmark servers). Its own servers it knows from its tables.
"""

from __future__ import annotations

from services.allocator.use_cases.allocator import Allocator
from shared.events import Event, ServerAllocated, ServerReleased


async def record_registration(allocator: Allocator, consumer: str, event: Event) -> None:
    """Start watching a server someone else announced; stop when it is released (ours are in our tables)."""
    server_id = getattr(event, "server_id", None)
    if server_id is None or server_id.startswith(f"{allocator.settings.server_prefix}-"):
        return
    if not isinstance(event, ServerAllocated | ServerReleased):
        return
    async with allocator.units.transaction() as repo:
        if not await repo.first_delivery(consumer, event.event_id):
            return
        if isinstance(event, ServerAllocated):
            await repo.register_server(event.server_id, event.endpoint, event.region)
        else:
            await repo.forget_registered(event.server_id)
