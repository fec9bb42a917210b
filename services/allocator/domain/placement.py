"""Fleet-wide placement: the cost of serving every model's demand across regions and GPU types.

A demand is a number of instances of the model *on its preferred type* (what the scaler sizes:
its capacity per instance is taken there), that is, a rate of work: `instances` x what one such
instance serves (`reference_rate`). An instance on another type serves its own rate
(`planner.instance_rate`: the performance model at the model's latency target, at that
quantisation and GPU share), so a slower, cheaper GPU needs more instances to serve as much.

`greedy_place` is the seed's rule applied demand by demand (preferred type first, then the
cheapest type that fits, in the demand's own region), the demanded count of instances on
whichever type it finds: on a slower type it serves less than demanded, and that shortfall is
unserved. `milp_place` solves the whole fleet at once with HiGHS: integer instances per (demand,
region, GPU type, quantisation) and integer GPUs per (model, region, GPU type, quantisation),
least $/h subject to each demand's work being served (sum of instances x their rate), free GPUs,
memory and latency (GPU speed, quantisation and the network round trip when served from another
region). Both report what they leave unserved in demanded instances (of the preferred type), so
they compare on served work. `place` returns the better of the two, so it is never worse than
greedy.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from services.allocator.domain.allocation import Allocation, PoolKey, allocate, apply
from services.allocator.domain.fleet import FleetConfig, GpuSpec, ModelRequirement, Pool
from services.allocator.domain.planner import gpu_share, instance_rate, running_quantisation

# (model_id, region, gpu_type, quantisation, GPUs per instance): remote users may need a faster,
# wider plan than local ones, so the share is part of the group.
GroupKey = tuple[str, str, str, str, Fraction]
TIE_BREAK = 1e-4  # $/h per instance; far below any price difference between GPUs
# An option serving less than this share of a demanded instance is left out: it is never worth its
# GPUs, and its tiny coefficient would only make the solver's numbers worse.
MIN_RELATIVE_RATE = 0.02
UNSERVED_PENALTY = 1000.0  # x the dearest $/h per served instance: HiGHS serves all it can


@dataclass(frozen=True)
class Demand:
    """Instances of a model (on its preferred type: `reference_rate` each) wanted by users in a region."""

    model_id: str
    region: str
    instances: int
    # The GPU types the MILP may use for it (empty: any): the caller's own judgement beyond the
    # model's latency target (the simulator keeps a model off types whose first token misses its SLO).
    gpu_types: tuple[str, ...] = ()


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
    """A fleet-wide placement: its groups, $/h and the demand it does not serve.

    `unserved`: per (model, users' region), demanded instances (of the preferred type) whose work
    no placed instance serves: an instance left without a GPU, or the shortfall of instances on a
    slower type.
    """

    method: str
    groups: tuple[Group, ...]
    cost_per_hour: float
    unserved: Mapping[tuple[str, str], float]

    @property
    def unserved_instances(self) -> float:
        """Demanded instances (of the preferred type) whose work is not served."""
        return round(sum(self.unserved.values()), 6)

    def gpus_used(self) -> dict[PoolKey, int]:
        """GPUs taken per (region, gpu type)."""
        used: dict[PoolKey, int] = defaultdict(int)
        for group in self.groups:
            used[(group.region, group.gpu_type)] += group.gpus
        return dict(used)

    def not_worse_than(self, other: Placement) -> bool:
        """Serves at least as much work, and costs no more when it serves as much (to a thousandth of an instance)."""
        key = (round(self.unserved_instances, 3), round(self.cost_per_hour, 6))
        return key <= (round(other.unserved_instances, 3), round(other.cost_per_hour, 6))


def reference_rate(model_id: str, fleet: FleetConfig) -> float:
    """What one demanded instance serves: an instance on the model's preferred type, as it runs there.

    Where the preferred type cannot run it, the fastest instance of any type (0: none can).
    """
    return _reference_rate(fleet.models[model_id], tuple(fleet.gpus.values()))


@functools.lru_cache(maxsize=4096)
def _reference_rate(requirement: ModelRequirement, gpus: tuple[GpuSpec, ...]) -> float:
    def rate(gpu: GpuSpec) -> float:
        quantisation = running_quantisation(requirement, gpu)
        share = gpu_share(requirement, gpu, quantisation)
        return 0.0 if share is None else instance_rate(requirement, gpu, quantisation, share)

    preferred = [gpu for gpu in gpus if gpu.gpu_type == requirement.preferred_gpu]
    first = rate(preferred[0]) if preferred else 0.0
    return first if first > 0 else max((rate(gpu) for gpu in gpus), default=0.0)


def preferred_share(fleet: FleetConfig, model_id: str, gpu_type: str) -> float:
    """What one instance of the model on `gpu_type`, as it runs there, serves in demanded instances (0: none)."""
    requirement, gpu = fleet.models[model_id], fleet.gpus[gpu_type]
    quantisation = running_quantisation(requirement, gpu)
    share = gpu_share(requirement, gpu, quantisation)
    reference = reference_rate(model_id, fleet)
    if share is None or reference <= 0:
        return 0.0
    return instance_rate(requirement, gpu, quantisation, share) / reference


def relative_rate(fleet: FleetConfig, key: GroupKey, user_region: str | None = None) -> float:
    """What one instance of the group serves users of `user_region` (None: its own), in demanded instances.

    Served from another region, each request's latency budget loses the round trip.
    """
    model_id, region, gpu_type, quantisation, share = key
    reference = reference_rate(model_id, fleet)
    if reference <= 0:
        return 0.0
    extra = 0.0 if user_region is None else fleet.rtt_ms(user_region, region)
    return instance_rate(fleet.models[model_id], fleet.gpus[gpu_type], quantisation, share, extra) / reference


def _shortfall(wanted: float, served: float) -> float:
    """Demanded instances not served, rounded off below a millionth (float noise)."""
    return round(max(0.0, wanted - served), 6)


def _cost(groups: Sequence[Group], fleet: FleetConfig, pools: Mapping[PoolKey, Pool]) -> float:
    return sum(g.gpus * fleet.price(g.region, g.gpu_type, pools[(g.region, g.gpu_type)].pricing_class) for g in groups)


def greedy_place(demands: Sequence[Demand], fleet: FleetConfig, pools: Mapping[PoolKey, Pool]) -> Placement:
    """The baseline: each demand in turn, in its own region, preferred type first, then the cheapest fit."""
    left = dict(pools)
    groups: list[Group] = []
    unserved: dict[tuple[str, str], float] = {}
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
            served = demand.instances * relative_rate(fleet, _group_key(group))
            if (short := _shortfall(demand.instances, served)) > 0:
                unserved[(demand.model_id, demand.region)] = short
        else:
            unserved[(demand.model_id, demand.region)] = float(demand.instances)
    return Placement("greedy", tuple(groups), _cost(groups, fleet, pools), unserved)


def _group_key(group: Group) -> GroupKey:
    return (group.model_id, group.region, group.gpu_type, group.quantisation, group.share)


def _options(
    demands: Sequence[Demand], fleet: FleetConfig, pools: Mapping[PoolKey, Pool]
) -> list[tuple[int, GroupKey]]:
    """Every (demand index, group) that fits the model's memory and latency target."""
    options = []
    for index, demand in enumerate(demands):
        requirement = fleet.models[demand.model_id]
        for (region, gpu_type), pool in pools.items():
            gpu = fleet.gpus[gpu_type]
            if pool.available < 1 or (demand.gpu_types and gpu_type not in demand.gpu_types):
                continue
            for quantisation in requirement.quantisations:
                share = gpu_share(requirement, gpu, quantisation, fleet.rtt_ms(demand.region, region))
                key = (demand.model_id, region, gpu_type, quantisation, share) if share is not None else None
                if key is not None and relative_rate(fleet, key, demand.region) >= MIN_RELATIVE_RATE:
                    options.append((index, key))
    return options


def milp_place(
    demands: Sequence[Demand],
    fleet: FleetConfig,
    pools: Mapping[PoolKey, Pool],
    time_limit_s: float = 1.0,
    mip_rel_gap: float = 1e-3,
) -> Placement | None:
    """The least-cost placement serving the demand, by mixed-integer programming; None: HiGHS found none in time.

    Each demand's row: the instances placed for it, each weighted by what it serves
    (`relative_rate`), plus its unserved share, cover the demanded instances. Unserved work costs
    `UNSERVED_PENALTY` x the dearest $/h per served instance of any option, so HiGHS serves all
    it can (it may leave well under a thousandth of an instance rather than buy a GPU for it).
    HiGHS stops once its solution is proven within `mip_rel_gap` of the optimum: 0.1% keeps the
    10,000-GPU fleet around a second (1e-4 takes ~4x longer for a few $/h).
    """
    demands = [d for d in demands if d.instances > 0]
    options = _options(demands, fleet, pools)
    if not options:
        unplaced = {(d.model_id, d.region): float(d.instances) for d in demands}
        return Placement("milp", (), 0.0, unplaced)
    group_index = {key: j for j, key in enumerate(dict.fromkeys(key for _, key in options))}
    pool_index = {key: p for p, key in enumerate(pools)}
    n_x, n_y, n_u = len(options), len(group_index), len(demands)
    prices = [fleet.price(r, g, pools[(r, g)].pricing_class) for (_, r, g, _, _) in group_index]
    rates = [relative_rate(fleet, key, demands[d].region) for d, key in options]
    # $/h per served demanded instance of each option; leaving one unserved must cost far more.
    per_served = [prices[group_index[key]] * float(key[4]) / rates[k] for k, (_, key) in enumerate(options)]
    penalty = UNSERVED_PENALTY * max([*per_served, 1.0])
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
        put(d, k, rates[k])  # demand rows: served + unserved >= demanded (in demanded instances)
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
    upper = np.concatenate([np.full(n_u, np.inf), np.zeros(n_y), [float(p.available) for p in pools.values()]])
    # Instances and GPUs are whole; the unserved share is not (a slower type covers a fraction).
    integrality = np.concatenate([np.ones(n_x + n_y), np.zeros(n_u)])
    # Without an upper bound per instance variable, HiGHS's presolve has nothing to tighten: a
    # demand never needs more instances of an option than its whole demand over that option's rate.
    caps = np.concatenate(
        [[np.ceil(demands[d].instances / rates[k]) for k, (d, _) in enumerate(options)], np.full(n_y + n_u, np.inf)]
    )
    result = milp(
        cost,
        integrality=integrality,
        bounds=Bounds(0, caps),
        constraints=LinearConstraint(matrix, lower, upper),
        options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap, "disp": False},
    )
    if result.x is None:
        return None
    values = np.rint(result.x[: n_x + n_y]).astype(int)
    instances: dict[GroupKey, int] = defaultdict(int)
    served = np.zeros(n_u)
    for k, (d, key) in enumerate(options):
        instances[key] += int(values[k])
        served[d] += values[k] * rates[k]
    groups = [
        Group(*key[:4], instances=instances[key], gpus=int(values[n_x + j]), share=key[4])
        for key, j in group_index.items()
        if values[n_x + j] > 0
    ]
    unserved = {
        (d.model_id, d.region): short
        for i, d in enumerate(demands)
        if (short := _shortfall(d.instances, float(served[i]))) > 0
    }
    return Placement("milp", tuple(groups), _cost(groups, fleet, pools), unserved)


def place(
    demands: Sequence[Demand], fleet: FleetConfig, pools: Mapping[PoolKey, Pool], time_limit_s: float = 1.0
) -> Placement:
    """The MILP placement unless greedy is better (or HiGHS ran out of time): never worse than greedy."""
    greedy = greedy_place(demands, fleet, pools)
    optimal = milp_place(demands, fleet, pools, time_limit_s)
    return optimal if optimal is not None and optimal.not_worse_than(greedy) else greedy
