"""The cluster autoscaler: each pool's GPUs grow and shrink by the seed's rules, through a capacity provider.

A round (one replica leads, lock `allocator.cluster`) reads every pool and the GPUs placements
missed since the last round (`Allocator.shortfalls`, recorded when an action could not be placed
for lack of GPUs: a spot server's replacement among them). The pure rules decide
(`domain/autoscaling.py`: utilisation > 0.8 or a shortfall grows, < 0.3 for 10 minutes shrinks,
within the pool's quota). Growing waits out the provider's delay, then adds the GPUs to the pool as
free, on-demand ones (`CapacityAdded`); the failed placements are asked for again by whoever asks
(the scaler, the reconciler for a draining spot server). Shrinking takes free GPUs out of the pool
under planning's pool lock, so a GPU a running instance holds is never released
(`CapacityReleased`), and then hands them back to the provider.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from services.allocator.adapters.capacity_provider import CapacityProvider
from services.allocator.domain.allocation import PoolKey
from services.allocator.domain.autoscaling import (
    AutoscalingRules,
    PoolAction,
    PoolDecision,
    PoolQuota,
    PoolReading,
    decide,
    low_since,
    pool_change,
)
from services.allocator.domain.capacity import classes_after, new_gpu_ids, plan_capacity_change
from services.allocator.use_cases.allocator import Allocator
from shared.events import CapacityAdded, CapacityReleased
from shared.leader import leading

log = logging.getLogger(__name__)
GROW_CLASS: Final = (
    "on_demand"  # what the autoscaler buys: on-demand is what is always there (spot comes by cost actions)
)


@dataclass
class ClusterAutoscaler:
    """Grows and shrinks pools through `provider`; keeps each pool's low-utilisation clock between rounds."""

    allocator: Allocator
    provider: CapacityProvider
    rules: AutoscalingRules
    quota: PoolQuota
    low: dict[PoolKey, datetime | None] = field(default_factory=dict)

    async def round(self) -> list[CapacityAdded | CapacityReleased]:
        """One round on the leading replica; the changes it made."""
        async with leading(self.allocator.sessions, "allocator.cluster") as leader:
            if not leader:
                return []
            return await self.scale()

    async def scale(self) -> list[CapacityAdded | CapacityReleased]:
        """Decide for every pool, then carry the decisions out (the caller leads)."""
        async with self.allocator.units.transaction() as repo:
            pools = await repo.pools()
            now = await repo.now()
        shortfalls, self.allocator.shortfalls = self.allocator.shortfalls, {}
        changes: list[CapacityAdded | CapacityReleased] = []
        for key, pool in sorted(pools.items()):
            reading = PoolReading(pool.total, pool.available, pool.reserved, shortfalls.get(key, 0))
            self.low[key] = low_since(self.low.get(key), reading.utilisation, now, self.rules)
            decision = decide(reading.utilisation, 0, pool.total, self.low[key], now, self.rules)
            gpus = pool_change(decision, reading, self.quota)
            reason = _reason(decision, reading)
            if gpus > 0:
                changes.extend(await self._grow(key, gpus, reason))
            elif gpus < 0:
                changes.extend(await self._shrink(key, -gpus, reason))
                self.low[key] = None  # a new stretch of low utilisation must pass before the next release
        return changes

    async def _grow(self, key: PoolKey, gpus: int, reason: str) -> list[CapacityAdded | CapacityReleased]:
        region, gpu_type = key
        delivered = await self.provider.acquire(region, gpu_type, gpus)
        if delivered <= 0:
            log.warning("capacity provider delivered no %s GPUs in %s (%s)", gpu_type, region, reason)
            return []
        async with self.allocator.units.transaction() as repo:
            pool, on_record, _ = await repo.lock_pool(region, gpu_type)
            if pool is None:
                return []
            plan = plan_capacity_change(on_record, {GROW_CLASS: delivered}, set())
            new_ids = new_gpu_ids(region, gpu_type, f"cluster-{uuid.uuid4()}", plan.buy)
            await repo.apply_capacity_plan(region, gpu_type, plan, new_ids)
            ids = new_ids.get(GROW_CLASS, [])
            added = CapacityAdded(
                source="allocator", region=region, gpu_type=gpu_type, pricing_class=GROW_CLASS, gpus=delivered,
                gpu_ids=ids, reason=reason, gpus_by_class=classes_after(on_record, plan),  # type: ignore[arg-type]
            )  # fmt: skip
            await repo.announce(added, key=f"{region}:{gpu_type}")
        log.info("pool %s/%s grew by %d GPUs: %s", region, gpu_type, delivered, reason)
        self.allocator.metrics.capacity_changes.labels("added").inc(delivered)
        await self.allocator.publish()
        return [added]

    async def _shrink(self, key: PoolKey, gpus: int, reason: str) -> list[CapacityAdded | CapacityReleased]:
        region, gpu_type = key
        async with self.allocator.units.transaction() as repo:
            pool, on_record, live = await repo.lock_pool(region, gpu_type)
            if pool is None:
                return []
            # Under the pool lock: only GPUs free now, on-demand first (a commitment or spot is the cost
            # service's to change); the plan refuses GPUs that a live server holds.
            free = [g for g in on_record if g.state == "free" and g.pricing_class != "reserved"]
            by_class: dict[str, int] = {}
            for g in sorted(free, key=lambda g: g.pricing_class != "on_demand")[:gpus]:
                by_class[g.pricing_class] = by_class.get(g.pricing_class, 0) - 1
            plan = plan_capacity_change(on_record, by_class, live)
            if not plan.applied or not plan.release:
                return []
            await repo.apply_capacity_plan(region, gpu_type, plan, {})
            released = CapacityReleased(
                source="allocator", region=region, gpu_type=gpu_type, gpus=len(plan.release),
                gpu_ids=list(plan.release), reason=reason, gpus_by_class=classes_after(on_record, plan),  # type: ignore[arg-type]
            )  # fmt: skip
            await repo.announce(released, key=f"{region}:{gpu_type}")
        await self.provider.release(region, gpu_type, list(plan.release))
        log.info("pool %s/%s released %d free GPUs: %s", region, gpu_type, len(plan.release), reason)
        self.allocator.metrics.capacity_changes.labels("released").inc(len(plan.release))
        await self.allocator.publish()
        return [released]


def _reason(decision: PoolDecision, reading: PoolReading) -> str:
    if reading.shortfall > 0 and decision.action is not PoolAction.SCALE_UP:
        return f"placements missed {reading.shortfall} GPUs"
    return decision.reason
