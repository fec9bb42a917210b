"""Spot reclaims lose nothing: a server under notice drains, is replaced, then stopped (make before break).

A `SpotInterruptionNotice` (from the cloud's provider adapter; locally the spot market job, or
`llmfleet chaos spot-reclaim`) marks the server `draining` until `reclaim_at`: it is no longer
capacity, so the replacement is planned as a high-priority action per model it held, with a
deterministic id (`replace-<server>-<model>`), so a redelivered notice or the reconciler asking
again plans nothing twice. The router, reading the same notice, sends the server no new batches.
The reconciler stops the server once every replacement is done, or when the cloud takes it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import timedelta

from services.allocator.domain.reconciliation import ServerOnRecord, next_attempt, replacement_prefix, spot_reclaims
from services.allocator.domain.scaling import instances_of
from services.allocator.use_cases.allocator import Allocator
from services.allocator.use_cases.planning import plan_action
from shared.events import ActionKind, ScalingActionRequested, SpotInterruptionNotice
from shared.leader import leading

log = logging.getLogger(__name__)
CONSUMER = "allocator.spot"  # the inbox name of the replacement actions planned here


async def on_notice(allocator: Allocator, consumer: str, notice: SpotInterruptionNotice) -> bool:
    """Drain the server and plan its replacement; False when it is not ours, not running, or seen before."""
    if not notice.server_id.startswith(f"{allocator.settings.server_prefix}-"):
        return False
    async with allocator.units.transaction() as repo:
        if not await repo.first_delivery(consumer, notice.event_id):
            return False
        if not await repo.mark_draining(notice.server_id, notice.reclaim_at):
            return False
        draining = await repo.servers_on_record(allocator.settings.server_prefix)
    log.warning("spot reclaim notice for %s (at %s): draining and replacing", notice.server_id, notice.reclaim_at)
    allocator.metrics.spot_notices.inc()
    (server,) = [s for s in draining if s.server_id == notice.server_id]
    await replace(allocator, server)
    return True


async def replace(allocator: Allocator, server: ServerOnRecord) -> None:
    """Plan, for each model the draining server holds, an action bringing it back to what it has now.

    An attempt that found no GPUs left its shortfall for the cluster autoscaler, which grows the
    pool with on-demand GPUs (spot is what was just taken away); the reconciler calls this again
    each round while the server drains, and the next attempt (`<id>~2`, up to
    `spot_replace_attempts`) places the instances there.
    """
    async with allocator.units.transaction() as repo:
        live, _ = await repo.live_servers(allocator.settings.server_prefix)
        attempts = {
            p.model_id: await repo.replacement_attempts(f"{replacement_prefix(server.server_id)}{p.model_id}")
            for p in server.placements
        }
    planned = False
    for p in server.placements:
        if p.state not in ("ready", "loading"):
            continue
        base = f"{replacement_prefix(server.server_id)}{p.model_id}"
        action_id = next_attempt(base, attempts[p.model_id], allocator.settings.spot_replace_attempts)
        if action_id is None:
            continue
        target = instances_of(p.model_id, server.region, live) + p.instances
        request = ScalingActionRequested(
            source="allocator", action_id=action_id,
            model_id=p.model_id, region=server.region, kind=ActionKind.SCALE_UP, current_instances=0,
            target_instances=target, priority="high", reason=f"replaces {server.server_id} before its spot reclaim",
            rule="spot_reclaim",
        )  # fmt: skip
        planned |= await plan_action(allocator, CONSUMER, request)
    if planned:
        allocator.work_ready.set()


async def market_round(
    allocator: Allocator, rate_per_hour: float, interval_s: float, uniform: Callable[[], float] = random.random
) -> list[str]:
    """The local spot market: reclaim running spot servers at `rate_per_hour` each; the notices it gave.

    One replica draws (the `allocator.spot_market` lock), so replicas do not multiply the rate.
    """
    async with leading(allocator.sessions, "allocator.spot_market") as leader:
        return await draw_reclaims(allocator, rate_per_hour, interval_s, uniform) if leader else []


async def draw_reclaims(
    allocator: Allocator, rate_per_hour: float, interval_s: float, uniform: Callable[[], float] = random.random
) -> list[str]:
    """One draw of the market (the caller leads): notices for the spot servers it takes."""
    async with allocator.units.transaction() as repo:
        candidates = await repo.spot_servers(allocator.settings.server_prefix)
        now = await repo.now()
        taken = spot_reclaims(candidates, rate_per_hour, interval_s, [uniform() for _ in candidates])
        reclaim_at = now + timedelta(seconds=allocator.settings.spot_notice_s)
        regions = {s.server_id: s.region for s in await repo.servers_on_record(allocator.settings.server_prefix)}
        for server_id in taken:
            notice = SpotInterruptionNotice(
                source="allocator", server_id=server_id, region=regions.get(server_id, ""), reclaim_at=reclaim_at
            )
            await repo.announce(notice, key=server_id)  # comes back through the allocations consumer, as the cloud's
    if taken:
        await allocator.publish()
    return taken
