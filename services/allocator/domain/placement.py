"""Fleet-wide placement: every model's demanded instances across regions and GPU types.

`greedy_place` is the seed's rule applied demand by demand (preferred type first, then the
cheapest type that fits, in the demand's own region). `milp_place` solves the whole fleet at
once with HiGHS: integer instances per (demand, region, GPU type, quantisation) and integer GPUs
per (model, region, GPU type, quantisation), least $/h subject to free GPUs, memory and latency
(GPU speed, quantisation and the network round trip when served from another region).
`place` returns the better of the two, so it is never worse than greedy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from services.allocator.domain.allocation import Allocation, PoolKey, allocate, apply
from services.allocator.domain.fleet import FleetConfig, Pool
from services.allocator.domain.planner import gpu_share, running_quantisation

# (model_id, region, gpu_type, quantisation, GPUs per instance): remote users may need a faster,
# wider plan than local ones, so the share is part of the group.
GroupKey = tuple[str, str, str, str, Fraction]
TIE_BREAK = 1e-4  # $/h per instance; far below any price difference between GPUs


@dataclass(frozen=True)
class Demand:
    """Instances of a model wanted by users in a region."""

    model_id: str
    region: str
    instances: int


@dataclass(frozen=True)
class Group:
    """GPUs of one type in one region running one model at one quantisation."""

    model_id: str
    region: str
    gpu_type: str
    quantisation: str
    instances: int
    gpus: int
    share: Fraction = Fraction(1)  # GPUs per instance: 1/k when k share one GPU, n when it spans n


@dataclass(frozen=True)
class Placement:
    """A fleet-wide placement: its groups, $/h and the instances it could not place."""

    method: str
    groups: tuple[Group, ...]
    cost_per_hour: float
    unserved: Mapping[tuple[str, str], int]

    @property
    def unserved_instances(self) -> int:
        """Demanded instances left without a GPU."""
        return sum(self.unserved.values())

    def gpus_used(self) -> dict[PoolKey, int]:
        """GPUs taken per (region, gpu type)."""
        used: dict[PoolKey, int] = defaultdict(int)
        for group in self.groups:
            used[(group.region, group.gpu_type)] += group.gpus
        return dict(used)

    def not_worse_than(self, other: Placement) -> bool:
        """Serves at least as many instances, and costs no more when it serves as many."""
        key = (self.unserved_instances, round(self.cost_per_hour, 6))
        return key <= (other.unserved_instances, round(other.cost_per_hour, 6))


def _cost(groups: Sequence[Group], fleet: FleetConfig, pools: Mapping[PoolKey, Pool]) -> float:
    return sum(g.gpus * fleet.price(g.region, g.gpu_type, pools[(g.region, g.gpu_type)].pricing_class) for g in groups)


def greedy_place(demands: Sequence[Demand], fleet: FleetConfig, pools: Mapping[PoolKey, Pool]) -> Placement:
    """The baseline: each demand in turn, in its own region, preferred type first, then the cheapest fit."""
    left = dict(pools)
    groups: list[Group] = []
    unserved: dict[tuple[str, str], int] = {}
    for demand in demands:
        if demand.instances < 1:
            continue
        requirement = fleet.models[demand.model_id]
        result = allocate(requirement, demand.instances, demand.region, fleet, left)
        if isinstance(result, Allocation):
            left = apply(left, result)
            gpu = fleet.gpus[result.gpu_type]
            share = gpu_share(requirement, gpu) or Fraction(1)
            quantisation = running_quantisation(requirement, gpu)  # what greedy's share was counted at
            group = Group(
                demand.model_id, demand.region, result.gpu_type, quantisation, demand.instances, result.gpu_count, share
            )
            groups.append(group)
        else:
            unserved[(demand.model_id, demand.region)] = demand.instances
    return Placement("greedy", tuple(groups), _cost(groups, fleet, pools), unserved)


def _options(
    demands: Sequence[Demand], fleet: FleetConfig, pools: Mapping[PoolKey, Pool]
) -> list[tuple[int, GroupKey]]:
    """Every (demand index, group) that fits the model's memory and latency target."""
    options = []
    for index, demand in enumerate(demands):
        requirement = fleet.models[demand.model_id]
        for (region, gpu_type), pool in pools.items():
            gpu = fleet.gpus[gpu_type]
            if pool.available < 1:
                continue
            for quantisation in requirement.quantisations:
                share = gpu_share(requirement, gpu, quantisation, fleet.rtt_ms(demand.region, region))
                if share is not None:
                    options.append((index, (demand.model_id, region, gpu_type, quantisation, share)))
    return options


def milp_place(
    demands: Sequence[Demand],
    fleet: FleetConfig,
    pools: Mapping[PoolKey, Pool],
    time_limit_s: float = 1.0,
    mip_rel_gap: float = 1e-3,
) -> Placement | None:
    """The least-cost placement by mixed-integer programming; None when HiGHS finds no solution in time.

    HiGHS stops once its solution is proven within `mip_rel_gap` of the optimum: 0.1% keeps the
    10,000-GPU fleet under 0.1 s (1e-4 takes ~4x longer for a few $/h).
    """
    demands = [d for d in demands if d.instances > 0]
    options = _options(demands, fleet, pools)
    if not options:
        unplaced = {(d.model_id, d.region): d.instances for d in demands}
        return Placement("milp", (), 0.0, unplaced)
    group_index = {key: j for j, key in enumerate(dict.fromkeys(key for _, key in options))}
    pool_index = {key: p for p, key in enumerate(pools)}
    n_x, n_y, n_u = len(options), len(group_index), len(demands)
    prices = [fleet.price(r, g, pools[(r, g)].pricing_class) for (_, r, g, _, _) in group_index]
    # Leaving an instance unplaced must cost more than any GPU could, so HiGHS places all it can.
    penalty = 10.0 * max([*prices, 1.0])
    # A cent-fraction nudge: at equal $/h keep instances unquantised and in their users' region.
    nudges = [TIE_BREAK * ((q != "fp16") + (r != demands[d].region)) for d, (_, r, _, q, _) in options]
    cost = np.concatenate([nudges, prices, np.full(n_u, penalty)])
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []

    def put(row: int, col: int, value: float) -> None:
        rows.append(row)
        cols.append(col)
        vals.append(value)

    for k, (d, key) in enumerate(options):
        put(d, k, 1.0)  # demand rows: placed + unserved == demanded
        # group rows: instances x share <= GPUs, as integers: numerator x instances <= denominator x GPUs
        put(n_u + group_index[key], k, float(key[4].numerator))
    for key, j in group_index.items():
        put(n_u + j, n_x + j, -float(key[4].denominator))
        put(n_u + n_y + pool_index[(key[1], key[2])], n_x + j, 1.0)  # pool rows: GPUs <= free
    for d in range(n_u):
        put(d, n_x + n_y + d, 1.0)
    n_rows = n_u + n_y + len(pools)
    matrix = coo_matrix((vals, (rows, cols)), shape=(n_rows, n_x + n_y + n_u)).tocsr()
    demanded = np.array([d.instances for d in demands], dtype=float)
    lower = np.concatenate([demanded, np.full(n_y, -np.inf), np.zeros(len(pools))])
    upper = np.concatenate([demanded, np.zeros(n_y), [float(p.available) for p in pools.values()]])
    result = milp(
        cost,
        integrality=np.ones(n_x + n_y + n_u),
        bounds=Bounds(0, np.inf),
        constraints=LinearConstraint(matrix, lower, upper),
        options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "disp": False},
    )
    if result.x is None:
        return None
    values = np.rint(result.x).astype(int)
    instances: dict[GroupKey, int] = defaultdict(int)
    for k, (_, key) in enumerate(options):
        instances[key] += int(values[k])
    groups = [
        Group(*key[:4], instances=instances[key], gpus=int(values[n_x + j]), share=key[4])
        for key, j in group_index.items()
        if values[n_x + j] > 0
    ]
    unserved = {
        (d.model_id, d.region): int(values[n_x + n_y + i]) for i, d in enumerate(demands) if values[n_x + n_y + i]
    }
    return Placement("milp", tuple(groups), _cost(groups, fleet, pools), unserved)


def place(
    demands: Sequence[Demand], fleet: FleetConfig, pools: Mapping[PoolKey, Pool], time_limit_s: float = 1.0
) -> Placement:
    """The MILP placement unless greedy is better (or HiGHS ran out of time): never worse than greedy."""
    greedy = greedy_place(demands, fleet, pools)
    optimal = milp_place(demands, fleet, pools, time_limit_s)
    return optimal if optimal is not None and optimal.not_worse_than(greedy) else greedy
