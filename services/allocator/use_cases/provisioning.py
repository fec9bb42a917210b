"""Making a planned action real, step by step, and committing each result with its event.

Each step first changes the world (start a server and load its model, load, unload, stop), then
commits the new state and its event in one transaction. Every call to the provisioner is bounded
by `step_timeout_s`, and any error it raises counts as that step failing: a failed start gives the
GPUs back and announces AllocationFailed with the reason; a stop that fails leaves the server
`stopping` (its GPUs still taken) for the reconciler to finish, rather than claiming it is gone.
A crash midway leaves the rows in their pending state, and the action is carried on from there
(starting and loading are idempotent, and server ids are planned, so a second start finds the
first server instead of starting another).

Actions are carried out by `work`, a supervised job off the consumer loop: the handler plans and
commits, then wakes the worker; the worker takes the next action by priority, then age, under a
lease it renews while it works (`FOR UPDATE SKIP LOCKED`, so replicas never run one action twice).
The work on an action is traced as a child of the span that requested it (its `traceparent` is
kept on the action's row): the scaler's decision, the allocator's planning, every provisioner call
(with Triton's repository calls) and the allocation events announced form one trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Mapping
from typing import TypeVar

from opentelemetry import propagate, trace
from opentelemetry.trace import INVALID_SPAN, SpanKind, use_span

from services.allocator.adapters.provisioner import ProvisioningError
from services.allocator.adapters.repository import AllocatorRepository
from services.allocator.domain.fleet import ModelRequirement
from services.allocator.domain.planner import Emulation, emulation_for
from services.allocator.domain.records import ActionRecord, PlacementRecord, ServerRecord
from services.allocator.use_cases.allocator import Allocator
from services.allocator.use_cases.planning import fail_action
from shared.events import ModelLoaded, ModelUnloaded, ServerAllocated, ServerReleased

log = logging.getLogger(__name__)
T = TypeVar("T")

# What a provisioner's own failures look like (a launcher, HTTP, a bad answer); database errors
# are not among them: they end the attempt, and the action is taken on again once it is back.
PROVISIONER_ERRORS = (ProvisioningError, OSError, RuntimeError, ValueError, TimeoutError)


async def bounded(allocator: Allocator, what: str, call: Awaitable[T]) -> T:
    """Await a provisioner call for at most `step_timeout_s`; any failure of it as a ProvisioningError."""
    limit = allocator.settings.step_timeout_s
    try:
        # Inside an action's trace only (the reconciler's rounds have none). The call's task is made
        # inside the span, so its thread, and Triton's repository calls, carry the context.
        traced = trace.get_current_span().is_recording()
        span = allocator.tracer.start_span("allocator.provisioner", kind=SpanKind.CLIENT) if traced else INVALID_SPAN
        span.set_attribute("llmfleet.step", what)
        with use_span(span, end_on_exit=True):
            return await asyncio.wait_for(call, limit)
    except ProvisioningError:
        raise
    except TimeoutError as error:
        raise ProvisioningError(f"{what} took longer than {limit:.0f} s") from error
    except PROVISIONER_ERRORS as error:
        raise ProvisioningError(f"{what} failed: {type(error).__name__}: {error}") from error


async def work(allocator: Allocator, owner: str, stopping: asyncio.Event) -> None:
    """Carry out actions one at a time, by priority then age, until `stopping` is set."""
    settings, failures = allocator.settings, 0
    while not stopping.is_set():
        try:
            async with allocator.units.transaction() as repo:
                action = await repo.claim_action(owner, settings.action_lease_s, settings.max_action_attempts)
            if action is None:
                await _nap(allocator, stopping, settings.worker_poll_interval_s)
                continue
            parent = propagate.extract({"traceparent": action.traceparent}) if action.traceparent else None
            with allocator.tracer.start_as_current_span(
                "allocator.carry_out", context=parent, attributes={"llmfleet.action_id": action.action_id}
            ):
                await carry_out_leased(allocator, owner, action.action_id)
            failures = 0
        except Exception:  # the database is down, most likely: the action is taken on again after a pause
            failures += 1
            pause = min(30.0, settings.worker_poll_interval_s * 2**failures) * random.uniform(0.5, 1.0)
            log.warning("provisioning round failed (%d in a row); again in %.1f s", failures, pause, exc_info=True)
            await _nap(allocator, stopping, pause)


async def _nap(allocator: Allocator, stopping: asyncio.Event, seconds: float) -> None:
    """Sleep until woken (an action was planned), stopped, or `seconds` passed."""
    woken = asyncio.ensure_future(allocator.work_ready.wait())
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait((woken, stopped), timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
        stopped.cancel()
    allocator.work_ready.clear()


async def carry_out_leased(allocator: Allocator, owner: str, action_id: str) -> None:
    """Carry out the action while renewing its lease; stop at once if the lease is lost to another worker."""
    settings = allocator.settings
    steps = asyncio.ensure_future(carry_out(allocator, action_id))

    async def keep_lease() -> None:
        while True:
            await asyncio.sleep(settings.action_lease_s / 3)
            try:
                async with allocator.units.transaction() as repo:
                    held = await repo.renew_lease(action_id, owner, settings.action_lease_s)
            except Exception:  # database down: keep working; the lease runs out only if it stays down
                log.warning("renewing the lease on %s failed", action_id, exc_info=True)
                continue
            if not held:
                log.warning("lost the lease on %s; stopping work on it", action_id)
                steps.cancel()
                return

    renewing = asyncio.ensure_future(keep_lease())
    try:
        await steps
    except asyncio.CancelledError:
        if not renewing.done():
            raise  # we are being stopped, not the lease lost
    finally:
        renewing.cancel()
        with contextlib.suppress(Exception):
            async with allocator.units.transaction() as repo:
                await repo.release_action(action_id, owner)


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
        ok &= await _stop(allocator, action, srv)
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
        endpoint = await bounded(
            allocator,
            f"starting {srv.server_id}",
            allocator.provisioner.start_server(srv.server_id, srv.region, srv.gpu_type, srv.gpu_count, emulation),
        )
        for p in placements:
            await load_ready(allocator, endpoint.endpoint, p.triton_model)
    except ProvisioningError as error:
        stopped = await _try_stop(allocator, srv.server_id)
        async with allocator.units.transaction() as repo:
            await repo.forget_placements(srv.server_id)
            if stopped is None:
                await repo.mark_server(srv.server_id, "failed", reason=str(error)[:2000])
                await repo.return_gpus([srv.server_id])
            else:  # it may still run: keep its GPUs until the reconciler has stopped it
                await repo.mark_server(srv.server_id, "stopping", reason=f"{error}; then {stopped}"[:2000])
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


async def _try_stop(allocator: Allocator, server_id: str) -> str | None:
    """Stop the server; None when it stopped, else why it did not."""
    try:
        await bounded(allocator, f"stopping {server_id}", allocator.provisioner.stop_server(server_id))
    except ProvisioningError as error:
        log.warning("stopping %s failed: %s", server_id, error)
        return str(error)
    return None


async def load_ready(allocator: Allocator, endpoint: str | None, triton_model: str) -> None:
    """Load the model on the server and check that it answers as ready; ProvisioningError if not."""
    if endpoint is None:  # rows of running servers have one; say so rather than call Triton at None
        raise ProvisioningError(f"no endpoint on record to load {triton_model} on")
    provisioner = allocator.provisioner
    await bounded(allocator, f"loading {triton_model} on {endpoint}", provisioner.load_model(endpoint, triton_model))
    ready = await bounded(allocator, f"checking {triton_model}", provisioner.model_ready(endpoint, triton_model))
    if not ready:
        raise ProvisioningError(f"{triton_model} on {endpoint} is not ready after loading")


async def _load(allocator: Allocator, action: ActionRecord, p: PlacementRecord) -> bool:
    """Put a model on a running server; announce it once it answers as ready."""
    try:
        await load_ready(allocator, p.endpoint, p.triton_model)
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
        unloading = allocator.provisioner.unload_model(str(p.endpoint), p.triton_model)
        await bounded(allocator, f"unloading {p.triton_model} on {p.server_id}", unloading)
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


async def _stop(allocator: Allocator, action: ActionRecord, srv: ServerRecord) -> bool:
    """Stop the server, give its GPUs back, announce the release; False (still `stopping`) if it would not stop."""
    began = time.monotonic()
    if (failure := await _try_stop(allocator, srv.server_id)) is not None:
        async with allocator.units.transaction() as repo:
            await repo.mark_server(srv.server_id, "stopping", reason=failure[:2000])
        return False
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
    return True


async def _mark_ready(repo: AllocatorRepository, action: ActionRecord, p: PlacementRecord) -> None:
    await repo.mark_placement(p.server_id, p.model_id, "ready")
    loaded = ModelLoaded(
        source="allocator", server_id=p.server_id, model_id=p.model_id, region=action.region,
        action_id=action.action_id, triton_model=p.triton_model, instances=p.instances,
    )  # fmt: skip
    await repo.announce(loaded, key=p.model_id)
