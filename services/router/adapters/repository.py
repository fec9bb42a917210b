"""Reads and writes of the server registry tables, inside a caller's transaction."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.adapters.orm import server, server_model
from services.router.domain.registry import Registry, Server
from shared.events import ModelLoaded, ServerAllocated


async def upsert_server(session: AsyncSession, event: ServerAllocated) -> None:
    """Insert the announced server, or update it when it is announced again."""
    values = {
        "endpoint": event.endpoint,
        "region": event.region,
        "gpu_type": event.gpu_type,
        "cost_per_hour": event.cost_per_hour,
        "capacity": event.capacity,
    }
    statement = insert(server).values(server_id=event.server_id, **values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=[server.c.server_id], set_={**values, "updated_at": func.now()})
    )


async def delete_server(session: AsyncSession, server_id: str) -> None:
    """Forget a released server and its placements."""
    await session.execute(delete(server_model).where(server_model.c.server_id == server_id))
    await session.execute(delete(server).where(server.c.server_id == server_id))


async def upsert_placement(session: AsyncSession, event: ModelLoaded) -> None:
    """Record that a server serves a model (under its Triton name)."""
    triton_model = event.triton_model or event.model_id
    statement = insert(server_model).values(
        server_id=event.server_id, model_id=event.model_id, triton_model=triton_model
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[server_model.c.server_id, server_model.c.model_id],
            set_={"triton_model": triton_model, "loaded_at": func.now()},
        )
    )


async def delete_placement(session: AsyncSession, server_id: str, model_id: str) -> None:
    """Record that a server no longer serves a model."""
    await session.execute(
        delete(server_model).where(server_model.c.server_id == server_id, server_model.c.model_id == model_id)
    )


async def load_registry(session: AsyncSession) -> Registry:
    """The registry as the tables hold it (servers start healthy; the health check corrects that)."""
    registry = Registry()
    for row in (await session.execute(select(server))).mappings():
        registry.add_server(
            Server(
                row["server_id"], row["endpoint"], row["region"], row["gpu_type"], row["cost_per_hour"], row["capacity"]
            )
        )
    for row in (await session.execute(select(server_model))).mappings():
        registry.load_model(row["server_id"], row["model_id"], row["triton_model"])
    return registry
