"""Cluster autoscaling rules for a region's GPU pool.

Up when utilisation > 0.8 or more than 100 requests are pending; down when utilisation has
stayed below 0.3 for more than 10 minutes; otherwise hold. The clock is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class PoolAction(StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    HOLD = "hold"


@dataclass(frozen=True)
class AutoscalingRules:
    """Thresholds of the cluster autoscaler and how big a step is."""

    up_utilisation: float = 0.8
    up_pending: int = 100
    down_utilisation: float = 0.3
    down_after: timedelta = timedelta(minutes=10)
    step_fraction: float = 0.2


@dataclass(frozen=True)
class PoolDecision:
    """What to do with a pool and by how many GPUs."""

    action: PoolAction
    gpus: int
    reason: str


def low_since(previous: datetime | None, utilisation: float, now: datetime, rules: AutoscalingRules) -> datetime | None:
    """When the current low-utilisation stretch began (kept across observations), None when not low."""
    if utilisation >= rules.down_utilisation:
        return None
    return previous or now


def decide(
    utilisation: float,
    pending_requests: int,
    gpus: int,
    since_low: datetime | None,
    now: datetime,
    rules: AutoscalingRules = AutoscalingRules(),
) -> PoolDecision:
    """Scale the pool of `gpus` GPUs up, down or hold, by the rules."""
    step = max(1, math.ceil(gpus * rules.step_fraction))
    if utilisation > rules.up_utilisation:
        return PoolDecision(PoolAction.SCALE_UP, step, f"utilisation {utilisation:.2f} > {rules.up_utilisation}")
    if pending_requests > rules.up_pending:
        return PoolDecision(PoolAction.SCALE_UP, step, f"{pending_requests} pending > {rules.up_pending}")
    if since_low is not None and utilisation < rules.down_utilisation and now - since_low > rules.down_after:
        low_for = int((now - since_low).total_seconds() // 60)
        return PoolDecision(
            PoolAction.SCALE_DOWN,
            min(step, max(0, gpus - 1)),
            f"utilisation {utilisation:.2f} < {rules.down_utilisation} for {low_for} min",
        )
    return PoolDecision(PoolAction.HOLD, 0, "within thresholds")


@dataclass(frozen=True)
class PoolQuota:
    """What the cloud account lets a pool hold: the provider is never asked beyond it."""

    min_gpus: int = 0
    max_gpus: int = 64


@dataclass(frozen=True)
class PoolReading:
    """One pool as the cluster autoscaler sees it: GPUs by state, and GPUs placements asked for and missed."""

    total: int
    free: int
    held_back: int = 0
    shortfall: int = 0  # GPUs that placements needed in this pool and did not find since the last round

    @property
    def utilisation(self) -> float:
        """Allocated over usable GPUs (those held back are not the autoscaler's); 0 for an empty pool."""
        usable = self.total - self.held_back
        return (usable - self.free) / usable if usable > 0 else 0.0


def pool_change(decision: PoolDecision, reading: PoolReading, quota: PoolQuota) -> int:
    """GPUs to add (positive) or release (negative), within the quota.

    A shortfall grows the pool by at least what was missed, whatever the utilisation says: an
    instance that could not be placed (a spot server's replacement among them) is the seed's
    "pending" demand, measured in GPUs. A release takes free GPUs only, so capacity that a running
    instance holds is never released.
    """
    room = max(0, quota.max_gpus - reading.total)
    if reading.shortfall > 0 or decision.action is PoolAction.SCALE_UP:
        wanted = max(reading.shortfall, decision.gpus if decision.action is PoolAction.SCALE_UP else 0)
        return min(wanted, room)
    if decision.action is PoolAction.SCALE_DOWN:
        return -min(decision.gpus, reading.free, max(0, reading.total - quota.min_gpus))
    return 0
