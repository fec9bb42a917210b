"""Server scoring: one pure strategy per routing strategy, chosen per request.

Each term is a "goodness" in [0, 1] (1 = best): near, idle, cheap, ready, reliable. A server's
score is the weighted sum with the strategy's weights; the ranking is best first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.router.domain.geo import normalised_distance
from shared.events import RoutingStrategy

COST_SCALE_PER_HOUR = 10.0  # $/h at which the cost term reaches its worst


@dataclass(frozen=True)
class Weights:
    """How much each term counts; they sum to 1 for every strategy."""

    distance: float = 0.0
    load: float = 0.0
    availability: float = 0.0
    history: float = 0.0
    cost: float = 0.0


WEIGHTS: dict[RoutingStrategy, Weights] = {
    RoutingStrategy.LATENCY_OPTIMIZED: Weights(distance=0.4, load=0.3, availability=0.2, history=0.1),
    RoutingStrategy.COST_OPTIMIZED: Weights(cost=0.5, load=0.3, distance=0.2),
    RoutingStrategy.BALANCED: Weights(load=0.3, distance=0.25, cost=0.25, history=0.2),
}


@dataclass(frozen=True)
class Candidate:
    """What scoring needs to know of one server that has the model loaded and is healthy."""

    server_id: str
    region: str
    cost_per_hour: float
    capacity: int
    inflight: int = 0
    ok: int = 0
    failed: int = 0


def success_rate(ok: int, failed: int) -> float:
    """Historical success rate; a server with no history starts at 1 (it has not failed yet)."""
    total = ok + failed
    return 1.0 if total == 0 else ok / total


def terms(candidate: Candidate, user_region: str) -> Weights:
    """The candidate's goodness per term (reusing Weights as a named 5-tuple)."""
    load = min(1.0, candidate.inflight / max(1, candidate.capacity))
    return Weights(
        distance=1.0 - normalised_distance(user_region, candidate.region),
        load=1.0 - load,
        # Availability: the server can take this batch now (a free slot) instead of queueing it.
        availability=1.0 if candidate.inflight < candidate.capacity else 0.0,
        history=success_rate(candidate.ok, candidate.failed),
        cost=1.0 - min(1.0, candidate.cost_per_hour / COST_SCALE_PER_HOUR),
    )


def score(candidate: Candidate, user_region: str, strategy: RoutingStrategy) -> float:
    """The weighted goodness of one server for a request from `user_region` (higher is better)."""
    w, t = WEIGHTS[strategy], terms(candidate, user_region)
    return (
        w.distance * t.distance
        + w.load * t.load
        + w.availability * t.availability
        + w.history * t.history
        + w.cost * t.cost
    )


def rank(candidates: Iterable[Candidate], user_region: str, strategy: RoutingStrategy) -> list[Candidate]:
    """Candidates best first; ties broken by server id so the ranking is deterministic."""
    return sorted(candidates, key=lambda c: (-score(c, user_region, strategy), c.server_id))
