"""The periodic re-plan: move running instances to cheaper placements when it saves enough (pure).

The scaler decides how many instances a model needs in a region; the allocator decides where
they run. Each action is placed as it comes (preferred GPU type first); the re-plan looks at the
whole fleet at once with the fleet MILP (`placement.place`, never worse than greedy) over the
instances running now, and for servers whose GPU type the optimum does not use proposes a move:
the same instances on the optimum's type in the same region, when that saves at least
`min_saving_pct` of the server's $/h. Moves are made before they break: the new server is started
first, the old one stopped once the new one serves (`use_cases.replanning`).

Only servers that hold one model move (a shared server's models would have to move together),
at most `max_moves` per round, and only onto GPUs free now (the old server's are freed after).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from services.allocator.domain.allocation import PoolKey
from services.allocator.domain.fleet import Pool
from services.allocator.domain.placement import Demand, Placement


@dataclass(frozen=True)
class RunningServer:
    """A running server as the re-plan sees it: where, on what, at what $/h, serving which models."""

    server_id: str
    region: str
    gpu_type: str
    gpu_count: int
    cost_per_hour: float
    placements: Mapping[str, int]  # model id -> instances (ready)


@dataclass(frozen=True)
class Move:
    """Move one server's instances to another GPU type in its region."""

    server_id: str
    model_id: str
    region: str
    from_gpu_type: str
    to_gpu_type: str
    quantisation: str
    instances: int
    gpus: int
    cost_before: float
    cost_after: float

    @property
    def saving_per_hour(self) -> float:
        """$/h saved once the old server is gone."""
        return round(self.cost_before - self.cost_after, 4)


def demands_of(
    servers: Sequence[RunningServer], preferred_share: Callable[[str, str], float] | None = None
) -> list[Demand]:
    """The work running now, per model and region: what the re-plan must place again.

    The fleet MILP's demand is in instances of the model's preferred type. `preferred_share(model,
    gpu type)`: what one instance on that type serves in those (`placement.preferred_share`), so
    instances running on a slower type are not re-placed as if they were fast ones; None counts
    every running instance as one (right only while they all run on their preferred type).
    """
    totals: dict[tuple[str, str], float] = {}
    for server in servers:
        share = 1.0
        for model_id, instances in server.placements.items():
            if preferred_share is not None:
                share = preferred_share(model_id, server.gpu_type)
            totals[(model_id, server.region)] = totals.get((model_id, server.region), 0.0) + instances * share
    return [Demand(m, r, math.ceil(n - 1e-9)) for (m, r), n in sorted(totals.items()) if n > 1e-9]


def freed(pools: Mapping[PoolKey, Pool], servers: Sequence[RunningServer]) -> dict[PoolKey, Pool]:
    """The pools as if the running servers' GPUs were free: the re-plan may put their instances anywhere."""
    result = dict(pools)
    for server in servers:
        key = (server.region, server.gpu_type)
        if key in result:
            result[key] = replace(result[key], available=result[key].available + server.gpu_count)
    return result


def plan_moves(
    servers: Sequence[RunningServer],
    optimum: Placement,
    pools: Mapping[PoolKey, Pool],
    price: Callable[[str, str], float],
    min_saving_pct: float,
    max_moves: int,
    throughput: Callable[[str, str], float] | None = None,
) -> list[Move]:
    """Moves onto the optimum's GPU types that save at least `min_saving_pct`, the largest savings first.

    `pools`: GPUs free now (a move takes its new GPUs before it frees the old ones); `price`:
    $/h of one GPU of (region, type) now; `throughput`: what one instance of (model, GPU type)
    serves. A move never lowers what the model can serve: on a slower type it takes as many more
    instances as it needs, and the saving is counted with them (the server's own instances are
    resized here, not taken from the optimum's group, which serves the whole region's demand).
    """
    candidates: list[Move] = []
    for server in servers:
        if len(server.placements) != 1:
            continue
        ((model_id, instances),) = server.placements.items()
        groups = [g for g in optimum.groups if g.model_id == model_id and g.region == server.region and g.instances]
        if not groups or any(g.gpu_type == server.gpu_type for g in groups):
            continue  # the optimum keeps (some of) this model on this type, or serves it elsewhere
        best = min(groups, key=lambda g: (price(g.region, g.gpu_type) * g.share, g.gpu_type))
        needed = instances
        if throughput is not None:
            before, now = throughput(model_id, server.gpu_type), throughput(model_id, best.gpu_type)
            if now <= 0:
                continue
            needed = max(instances, math.ceil(instances * before / now - 1e-9))
        gpus = max(1, math.ceil(needed * best.share))
        after = round(gpus * price(server.region, best.gpu_type), 4)
        move = Move(
            server.server_id, model_id, server.region, server.gpu_type, best.gpu_type, best.quantisation,
            needed, gpus, server.cost_per_hour, after,
        )  # fmt: skip
        if server.cost_per_hour > 0 and move.saving_per_hour / server.cost_per_hour * 100 >= min_saving_pct:
            candidates.append(move)
    free = {key: pool.available for key, pool in pools.items()}
    moves: list[Move] = []
    for move in sorted(candidates, key=lambda m: (-m.saving_per_hour, m.server_id)):
        key = (move.region, move.to_gpu_type)
        if len(moves) < max_moves and free.get(key, 0) >= move.gpus:
            free[key] -= move.gpus
            moves.append(move)
    return moves
