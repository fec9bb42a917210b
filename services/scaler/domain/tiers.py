"""Model cache tiers (hot / warm / cold) and predictive preload."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

Priority = Literal["low", "medium", "high"]

HOT_ABOVE_RPH = 1000.0
WARM_ABOVE_RPH = 100.0
COLD_IDLE = timedelta(minutes=30)
PRELOAD_ABOVE_REQUESTS = 50.0
PRELOAD_HIGH_CONFIDENCE = 0.8
PRELOAD_MEDIUM_CONFIDENCE = 0.6


class Tier(StrEnum):
    """Where a model sits in the cache: kept loaded widely, in two regions, or on demand."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


@dataclass(frozen=True)
class TierPlan:
    """Where a tier keeps a model loaded: one replica in each of its regions."""

    tier: Tier
    regions: tuple[str, ...]

    @property
    def replicas(self) -> int:
        """Replicas the tier keeps loaded in all."""
        return len(self.regions)


TIER_PLANS: dict[Tier, TierPlan] = {
    Tier.HOT: TierPlan(Tier.HOT, ("us-east-1", "eu-west-1", "ap-southeast-1")),
    Tier.WARM: TierPlan(Tier.WARM, ("us-east-1", "eu-west-1")),
    Tier.COLD: TierPlan(Tier.COLD, ()),
}


def tier_for(requests_per_hour: float) -> Tier:
    """Hot above 1000 requests/hour, warm above 100, cold otherwise."""
    if requests_per_hour > HOT_ABOVE_RPH:
        return Tier.HOT
    if requests_per_hour > WARM_ABOVE_RPH:
        return Tier.WARM
    return Tier.COLD


def min_instances(tier: Tier, region: str) -> int:
    """The floor a tier keeps in a region (a cold model is never held loaded by its tier)."""
    return 1 if region in TIER_PLANS[tier].regions else 0


def preload_priority(expected_requests_next_hour: float, confidence: float) -> Priority | None:
    """High or medium priority preload for a model expected to be busy soon; None: no preload."""
    if expected_requests_next_hour <= PRELOAD_ABOVE_REQUESTS:
        return None
    if confidence > PRELOAD_HIGH_CONFIDENCE:
        return "high"
    if confidence > PRELOAD_MEDIUM_CONFIDENCE:
        return "medium"
    return None


def idle_for_unload(
    last_request_at: datetime | None, loaded_since: datetime | None, now: datetime, idle: timedelta = COLD_IDLE
) -> bool:
    """A cold model is unloaded after `idle` (30 minutes) without a request (or since it was loaded)."""
    since = max((t for t in (last_request_at, loaded_since) if t is not None), default=None)
    return since is not None and now - since >= idle


def with_hysteresis(requests_per_hour: float, previous: Tier | None, band: float = 0.8) -> Tier:
    """The tier for a rate, but a model leaves its tier downwards only below `band` x the threshold."""
    new = tier_for(requests_per_hour)
    if previous is None or _RANK[new] >= _RANK[previous]:
        return new
    return previous if _RANK[tier_for(requests_per_hour / band)] >= _RANK[previous] else new


_RANK = {Tier.COLD: 0, Tier.WARM: 1, Tier.HOT: 2}
