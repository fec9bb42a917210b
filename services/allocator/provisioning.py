"""Making a planned action real, step by step, and committing each result with its event.

Each step first changes the world (start a server and load its model, load, unload, stop), then
commits the new state and its event in one transaction. A failed start gives the GPUs back and
announces AllocationFailed with the reason; a crash midway leaves the rows in their pending
state, and the redelivered action carries on from there (starting and loading are idempotent).
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.allocator.adapters import repository as repo
from services.allocator.adapters.orm import placement, scaling_action, server
from services.allocator.adapters.provisioner import ProvisioningError
from services.allocator.service import Allocator, fail_action
from shared.events import ModelLoaded, ModelUnloaded, ServerAllocated, ServerReleased

log = logging.getLogger(__name__)


async def carry_out(allocator: Allocator, action_id: str) -> None:
    """Do the action's pending steps: start, load, unload, stop; then close the action."""
    async with allocator.sessions() as session:
        action = (await session.execute(select(scaling_action).where(scaling_action.c.action_id == action_id))).one()
        pending = await _pending(session, action_id)
    ok = True
    for srv in pending["starting"]:
        ok &= await _start(allocator, action, srv, [p for p in pending["loading"] if p.server_id == srv.server_id])
    for p in (p for p in pending["loading"] if p.server_state == "running"):
        ok &= await _load(allocator, action, p)
    for p in pending["unloading"]:
        ok &= await _unload(allocator, action, p)
    for srv in pending["stopping"]:
        await _stop(allocator, action, srv)
    async with allocator.sessions.begin() as session:
        where = and_(scaling_action.c.action_id == action_id, scaling_action.c.state == "in_progress")
        state, reason = ("done", None) if ok else ("failed", "a step of the action failed (see the log)")
        await session.execute(
            scaling_action.update().where(where).values(state=state, reason=reason, updated_at=func.now())
        )
    await allocator.publish()


async def _pending(session: AsyncSession, action_id: str) -> dict[str, list[Any]]:
    servers = (await session.execute(select(server).where(server.c.action_id == action_id))).all()
    placements = (
        await session.execute(
            select(placement, server.c.endpoint, server.c.state.label("server_state"))
            .join(server, server.c.server_id == placement.c.server_id)
            .where(placement.c.action_id == action_id)
        )
    ).all()
    return {
        "starting": [s for s in servers if s.state == "starting"],
        "stopping": [s for s in servers if s.state == "stopping"],
        "loading": [p for p in placements if p.state == "loading"],
        "unloading": [p for p in placements if p.state == "unloading"],
    }


async def _start(allocator: Allocator, action: Any, srv: Any, placements: list[Any]) -> bool:
    """Start the server, load its models, check they answer; then commit and announce."""
    began = time.monotonic()
    try:
        endpoint = await allocator.provisioner.start_server(srv.server_id, srv.region, srv.gpu_type, srv.gpu_count)
        for p in placements:
            await _load_ready(allocator, endpoint.endpoint, p.triton_model)
    except ProvisioningError as error:
        with contextlib.suppress(Exception):
            await allocator.provisioner.stop_server(srv.server_id)
        async with allocator.sessions.begin() as session:
            await _mark_server(session, srv.server_id, "failed", reason=str(error)[:2000])
            await repo.forget_placements(session, srv.server_id)
            await repo.return_gpus(session, [srv.server_id])
            await fail_action(allocator, session, action.action_id, action.model_id, action.region, str(error))
        return False
    allocator.metrics.provision_seconds.labels("start").observe(time.monotonic() - began)
    async with allocator.sessions.begin() as session:
        await _mark_server(
            session, srv.server_id, "running", endpoint=endpoint.endpoint, metrics_url=endpoint.metrics_url
        )
        allocated = ServerAllocated(
            source="allocator", server_id=srv.server_id, endpoint=endpoint.endpoint, metrics_url=endpoint.metrics_url,
            region=srv.region, gpu_type=srv.gpu_type, gpu_count=srv.gpu_count, cost_per_hour=srv.cost_per_hour,
            pricing_class=srv.pricing_class, capacity=sum(p.instances for p in placements) or 1,
            action_id=action.action_id,
        )  # fmt: skip
        await allocator.announce(session, allocated, key=action.model_id)
        for p in placements:
            await _mark_ready(allocator, session, action, p)
    allocator.metrics.allocations.labels("allocated").inc()
    return True


async def _load_ready(allocator: Allocator, endpoint: str, triton_model: str) -> None:
    await allocator.provisioner.load_model(endpoint, triton_model)
    if not await allocator.provisioner.model_ready(endpoint, triton_model):
        raise ProvisioningError(f"{triton_model} on {endpoint} is not ready after loading")


async def _load(allocator: Allocator, action: Any, p: Any) -> bool:
    """Put a model on a running server; announce it once it answers as ready."""
    try:
        await _load_ready(allocator, p.endpoint, p.triton_model)
    except ProvisioningError as error:
        async with allocator.sessions.begin() as session:
            await repo.forget_placements(session, p.server_id, p.model_id)
            await fail_action(allocator, session, action.action_id, action.model_id, action.region, str(error))
        return False
    async with allocator.sessions.begin() as session:
        await _mark_ready(allocator, session, action, p)
    return True


async def _unload(allocator: Allocator, action: Any, p: Any) -> bool:
    """Take a model off a server; announce it once it is gone."""
    try:
        await allocator.provisioner.unload_model(p.endpoint, p.triton_model)
    except ProvisioningError as error:
        log.warning("unload of %s on %s failed: %s", p.model_id, p.server_id, error)
        return False
    async with allocator.sessions.begin() as session:
        await repo.forget_placements(session, p.server_id, p.model_id)
        unloaded = ModelUnloaded(
            source="allocator",
            server_id=p.server_id,
            model_id=p.model_id,
            region=action.region,
            action_id=action.action_id,
        )
        await allocator.announce(session, unloaded, key=p.model_id)
    return True


async def _stop(allocator: Allocator, action: Any, srv: Any) -> None:
    """Stop the server, give its GPUs back, announce the release."""
    began = time.monotonic()
    await allocator.provisioner.stop_server(srv.server_id)
    allocator.metrics.provision_seconds.labels("stop").observe(time.monotonic() - began)
    async with allocator.sessions.begin() as session:
        await repo.forget_placements(session, srv.server_id)
        await _mark_server(session, srv.server_id, "released")
        await repo.return_gpus(session, [srv.server_id])
        released = ServerReleased(
            source="allocator", server_id=srv.server_id, region=srv.region, action_id=action.action_id
        )
        await allocator.announce(session, released, key=action.model_id)
    allocator.metrics.allocations.labels("released").inc()


async def _mark_server(session: AsyncSession, server_id: str, state: str, **values: Any) -> None:
    values["updated_at"] = func.now()
    await session.execute(server.update().where(server.c.server_id == server_id).values(state=state, **values))


async def _mark_ready(allocator: Allocator, session: AsyncSession, action: Any, p: Any) -> None:
    where = and_(placement.c.server_id == p.server_id, placement.c.model_id == p.model_id)
    await session.execute(placement.update().where(where).values(state="ready"))
    loaded = ModelLoaded(
        source="allocator", server_id=p.server_id, model_id=p.model_id, region=action.region,
        action_id=action.action_id, triton_model=p.triton_model, instances=p.instances,
    )  # fmt: skip
    await allocator.announce(session, loaded, key=p.model_id)
