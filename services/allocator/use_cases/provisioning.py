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
from collections.abc import Mapping

from services.allocator.adapters.provisioner import ProvisioningError
from services.allocator.adapters.repository import AllocatorRepository
from services.allocator.domain.fleet import ModelRequirement
from services.allocator.domain.planner import Emulation, emulation_for
from services.allocator.domain.records import ActionRecord, PlacementRecord, ServerRecord
from services.allocator.use_cases.allocator import Allocator
from services.allocator.use_cases.planning import fail_action
from shared.events import ModelLoaded, ModelUnloaded, ServerAllocated, ServerReleased

log = logging.getLogger(__name__)


async def carry_out(allocator: Allocator, action_id: str) -> None:
    """Do the action's pending steps: start, load, unload, stop; then close the action."""
    async with allocator.units.transaction() as repo:
        action = await repo.action(action_id)
        pending = await repo.pending(action_id)
        requirements = await repo.requirements()
    ok = True
    for srv in pending.starting:
        placements = [p for p in pending.loading if p.server_id == srv.server_id]
        ok &= await _start(allocator, action, srv, placements, _emulation(allocator, srv, placements, requirements))
    for p in (p for p in pending.loading if p.server_state == "running"):
        ok &= await _load(allocator, action, p)
    for p in pending.unloading:
        ok &= await _unload(allocator, action, p)
    for srv in pending.stopping:
        await _stop(allocator, action, srv)
    async with allocator.units.transaction() as repo:
        state, reason = ("done", None) if ok else ("failed", "a step of the action failed (see the log)")
        await repo.finish_action(action_id, state, reason)
    await allocator.publish()


def _emulation(
    allocator: Allocator,
    srv: ServerRecord,
    placements: list[PlacementRecord],
    requirements: Mapping[str, ModelRequirement],
) -> Emulation | None:
    """What an emulated server times its batches as: the model it is started for (one model per server)."""
    gpu = allocator.fleet.gpus.get(srv.gpu_type)
    known = [requirements[p.model_id] for p in placements if p.model_id in requirements]
    return emulation_for(known[0], gpu) if known and gpu is not None else None


async def _start(
    allocator: Allocator,
    action: ActionRecord,
    srv: ServerRecord,
    placements: list[PlacementRecord],
    emulation: Emulation | None = None,
) -> bool:
    """Start the server, load its models, check they answer; then commit and announce."""
    began = time.monotonic()
    try:
        endpoint = await allocator.provisioner.start_server(
            srv.server_id, srv.region, srv.gpu_type, srv.gpu_count, emulation
        )
        for p in placements:
            await _load_ready(allocator, endpoint.endpoint, p.triton_model)
    except ProvisioningError as error:
        with contextlib.suppress(Exception):
            await allocator.provisioner.stop_server(srv.server_id)
        async with allocator.units.transaction() as repo:
            await repo.mark_server(srv.server_id, "failed", reason=str(error)[:2000])
            await repo.forget_placements(srv.server_id)
            await repo.return_gpus([srv.server_id])
            await fail_action(allocator, repo, action.action_id, action.model_id, action.region, str(error))
        return False
    allocator.metrics.provision_seconds.labels("start").observe(time.monotonic() - began)
    async with allocator.units.transaction() as repo:
        await repo.mark_server(srv.server_id, "running", endpoint=endpoint.endpoint, metrics_url=endpoint.metrics_url)
        allocated = ServerAllocated(
            source="allocator", server_id=srv.server_id, endpoint=endpoint.endpoint, metrics_url=endpoint.metrics_url,
            region=srv.region, gpu_type=srv.gpu_type, gpu_count=srv.gpu_count, cost_per_hour=srv.cost_per_hour,
            pricing_class=srv.pricing_class, capacity=sum(p.instances for p in placements) or 1,
            action_id=action.action_id,
        )  # fmt: skip
        await repo.announce(allocated, key=action.model_id)
        for p in placements:
            await _mark_ready(repo, action, p)
    allocator.metrics.allocations.labels("allocated").inc()
    return True


async def _load_ready(allocator: Allocator, endpoint: str | None, triton_model: str) -> None:
    if endpoint is None:  # rows of running servers have one; say so rather than call Triton at None
        raise ProvisioningError(f"no endpoint on record to load {triton_model} on")
    await allocator.provisioner.load_model(endpoint, triton_model)
    if not await allocator.provisioner.model_ready(endpoint, triton_model):
        raise ProvisioningError(f"{triton_model} on {endpoint} is not ready after loading")


async def _load(allocator: Allocator, action: ActionRecord, p: PlacementRecord) -> bool:
    """Put a model on a running server; announce it once it answers as ready."""
    try:
        await _load_ready(allocator, p.endpoint, p.triton_model)
    except ProvisioningError as error:
        async with allocator.units.transaction() as repo:
            await repo.forget_placements(p.server_id, p.model_id)
            await fail_action(allocator, repo, action.action_id, action.model_id, action.region, str(error))
        return False
    async with allocator.units.transaction() as repo:
        await _mark_ready(repo, action, p)
    return True


async def _unload(allocator: Allocator, action: ActionRecord, p: PlacementRecord) -> bool:
    """Take a model off a server; announce it once it is gone."""
    try:
        await allocator.provisioner.unload_model(str(p.endpoint), p.triton_model)
    except ProvisioningError as error:
        log.warning("unload of %s on %s failed: %s", p.model_id, p.server_id, error)
        return False
    async with allocator.units.transaction() as repo:
        await repo.forget_placements(p.server_id, p.model_id)
        unloaded = ModelUnloaded(
            source="allocator",
            server_id=p.server_id,
            model_id=p.model_id,
            region=action.region,
            action_id=action.action_id,
        )
        await repo.announce(unloaded, key=p.model_id)
    return True


async def _stop(allocator: Allocator, action: ActionRecord, srv: ServerRecord) -> None:
    """Stop the server, give its GPUs back, announce the release."""
    began = time.monotonic()
    await allocator.provisioner.stop_server(srv.server_id)
    allocator.metrics.provision_seconds.labels("stop").observe(time.monotonic() - began)
    async with allocator.units.transaction() as repo:
        await repo.forget_placements(srv.server_id)
        await repo.mark_server(srv.server_id, "released")
        await repo.return_gpus([srv.server_id])
        released = ServerReleased(
            source="allocator", server_id=srv.server_id, region=srv.region, action_id=action.action_id
        )
        await repo.announce(released, key=action.model_id)
    allocator.metrics.allocations.labels("released").inc()


async def _mark_ready(repo: AllocatorRepository, action: ActionRecord, p: PlacementRecord) -> None:
    await repo.mark_placement(p.server_id, p.model_id, "ready")
    loaded = ModelLoaded(
        source="allocator", server_id=p.server_id, model_id=p.model_id, region=action.region,
        action_id=action.action_id, triton_model=p.triton_model, instances=p.instances,
    )  # fmt: skip
    await repo.announce(loaded, key=p.model_id)
