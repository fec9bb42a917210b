"""The router's allocation use cases: events change the registry tables (once, in one transaction) and memory."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.adapters import repository
from services.router.adapters.orm import inbox
from services.router.domain.registry import Registry, Server
from services.router.settings import StaticServer
from shared.events import (
    Event,
    ModelLoaded,
    ModelUnloaded,
    ServerAllocated,
    ServerReleased,
    SpotInterruptionNotice,
)
from shared.inbox import first_delivery


async def record_allocation(sessions: async_sessionmaker[AsyncSession], consumer: str, event: Event) -> bool:
    """Persist one allocation event's registry change; False when it was already applied."""
    return await record_allocations(sessions, consumer, [event]) == 1


async def record_allocations(sessions: async_sessionmaker[AsyncSession], consumer: str, events: list[Event]) -> int:
    """Persist the events' registry changes in order, in one transaction; how many were new to the inbox."""
    applied = 0
    async with sessions.begin() as session:
        for event in events:
            applied += await _record(session, consumer, event)
    return applied


async def _record(session: AsyncSession, consumer: str, event: Event) -> bool:
    """One event's change inside the caller's transaction, unless the inbox has it already."""
    if not await first_delivery(session, inbox, consumer, event.event_id):
        return False
    if isinstance(event, ServerAllocated):
        await repository.upsert_server(session, event)
    elif isinstance(event, ServerReleased):
        await repository.delete_server(session, event.server_id)
    elif isinstance(event, ModelLoaded):
        await repository.upsert_placement(session, event)
    elif isinstance(event, ModelUnloaded):
        await repository.delete_placement(session, event.server_id, event.model_id)
    return True


def apply_allocation(registry: Registry, event: Event) -> None:
    """The same change on the in-memory registry (idempotent, so redeliveries are harmless)."""
    if isinstance(event, ServerAllocated):
        registry.add_server(
            Server(event.server_id, event.endpoint, event.region, event.gpu_type, event.cost_per_hour, event.capacity)
        )
    elif isinstance(event, ServerReleased):
        registry.remove_server(event.server_id)
    elif isinstance(event, ModelLoaded):
        registry.load_model(event.server_id, event.model_id, event.triton_model)
    elif isinstance(event, ModelUnloaded):
        registry.unload_model(event.server_id, event.model_id)
    elif isinstance(event, SpotInterruptionNotice):
        registry.drain_server(event.server_id)
    # Every other allocation event (a failure, a repair, a move, a capacity change) changes no
    # registry state: their server changes come as the events above. Ignoring them rather than
    # raising keeps a router running when an upgraded allocator announces a kind it does not know.


def add_static(registry: Registry, static: list[StaticServer]) -> None:
    """Add the statically configured servers and their models to the registry."""
    for s in static:
        registry.add_server(Server(s.server_id, s.endpoint, s.region, s.gpu_type, s.cost_per_hour, s.capacity))
        for model_id, triton_model in s.models.items():
            registry.load_model(s.server_id, model_id, triton_model)


async def load_registry(sessions: async_sessionmaker[AsyncSession] | None, static: list[StaticServer]) -> Registry:
    """The persisted registry (unless `sessions` is None: static only) plus the statically configured servers."""
    registry = Registry()
    if sessions is not None:
        async with sessions() as session:
            registry = await repository.load_registry(session)
    add_static(registry, static)
    return registry
