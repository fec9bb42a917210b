"""The fleet loop's pure pieces (issue 15): deployment plans, the MILP re-plan, what a spot reclaim loses.

- **Plans.** A model's deployment is the allocator planner's best single-GPU plan on its preferred
  type (`planner.feasible_plans`: fp16 / int8 / int4, lowest cost per throughput within the latency
  target). The allocator is then given the model *as deployed*: its memory at that quantisation,
  so its own `gpu_share` sizes every instance (one GPU where it fits, else a parallel plan), and
  the performance model times it at that quantisation over those GPUs.
- **Re-plan.** Every interval the instances each model holds in a region are placed afresh by the
  fleet MILP (`placement.milp_place`, HiGHS under a time budget; `greedy_place` when it finds
  nothing in time), over the region's allocatable GPUs. The GPU type that holds most of a model's
  instances becomes the type its new instances go to first.
- **Reclaims.** The requests in flight on a server when it goes: its instances x their busy share x
  the batch they hold (B_max); with a notice, only those that started before the server stopped
  taking batches and run longer than the drain window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from services.allocator.domain import performance
from services.allocator.domain.allocation import PoolKey
from services.allocator.domain.fleet import QUANT_MEMORY, FleetConfig, ModelRequirement, Pool
from services.allocator.domain.placement import Demand, Placement, greedy_place, milp_place
from services.allocator.domain.planner import feasible_plans

QUANTISATIONS: tuple[str, ...] = ("fp16", "int8", "int4")


def deployed_quantisation(requirement: ModelRequirement, fleet: FleetConfig) -> str:
    """The planner's best single-GPU quantisation on the model's preferred type (fp16 if none fits)."""
    if requirement.performance_model is None or requirement.preferred_gpu not in fleet.gpus:
        return "fp16"
    gpu = fleet.gpus[requirement.preferred_gpu]
    target = requirement.latency_target_ms if requirement.latency_target_ms is not None else float("inf")
    allowed = replace(requirement, quantisations=QUANTISATIONS)  # plans on: every precision is allowed
    plans = feasible_plans(allowed, gpu, gpu.on_demand_per_hour, target, 1)
    single = [p for p in plans if p.strategy == "single"]
    return single[0].quantisation if single else "fp16"


def deployed_requirement(requirement: ModelRequirement, quantisation: str) -> ModelRequirement:
    """The model as the allocator sizes it when it runs at `quantisation` (itself at fp16).

    The allocator's scaling path sizes instances at fp16 (`gpu_share`'s default), so a quantised
    deployment is given as a model whose fp16 memory is the quantised one (the performance model's,
    at the reference request). Its latency target is dropped: the planner checked the plan against
    it on the preferred type, and the simulator measures what each GPU type serves.
    """
    name = requirement.performance_model
    if quantisation == "fp16" or name is None:
        return requirement
    memory = performance.memory_gb(name, quantisation) / QUANT_MEMORY["fp16"]
    return replace(requirement, min_memory_gb=memory, emulates=None, latency_target_ms=None, quantisations=("fp16",))


@dataclass(frozen=True)
class Replan:
    """One re-plan: the type new instances of each (model, region) go to first, and how it was found."""

    types: dict[tuple[str, str], str]
    method: str  # "milp", or "greedy" when HiGHS found nothing in time
    cost_per_hour: float
    unserved: float  # demanded instances (of the preferred type) whose work it does not serve


def allocatable(pools: Mapping[PoolKey, Pool], region: str) -> dict[PoolKey, Pool]:
    """The region's pools as if nothing ran: every GPU not held back is free to place."""
    return {k: replace(p, available=p.total - p.reserved) for k, p in pools.items() if k[0] == region}


def replan_region(
    instances: Mapping[str, int],
    region: str,
    fleet: FleetConfig,
    pools: Mapping[PoolKey, Pool],
    time_limit_s: float,
    gpu_types: Mapping[str, tuple[str, ...]] | None = None,
) -> Replan:
    """Place the region's demanded instances (model -> count) with the MILP; greedy if it runs out of time.

    `gpu_types`: per model, the types the MILP may use (absent: any).
    """
    allowed = gpu_types or {}
    demands = [
        Demand(model_id, region, n, allowed.get(model_id, ())) for model_id, n in sorted(instances.items()) if n > 0
    ]
    free = allocatable(pools, region)
    placement: Placement | None = milp_place(demands, fleet, free, time_limit_s) if demands else None
    if placement is None:
        placement = greedy_place(demands, fleet, free)
    best: dict[str, tuple[int, str]] = {}
    for group in placement.groups:
        if group.region == region and group.instances > best.get(group.model_id, (0, ""))[0]:
            best[group.model_id] = (group.instances, group.gpu_type)
    types = {(model_id, region): gpu_type for model_id, (_, gpu_type) in best.items()}
    return Replan(types, placement.method, placement.cost_per_hour, placement.unserved_instances)


def slo_gpu_types(
    prefill_samples_s: NDArray[np.float64],
    gpus: NDArray[np.int64],
    slo_s: float,
    types: Sequence[str],
    tolerance: float = 0.01,
) -> tuple[str, ...]:
    """The GPU types a model's first token meets the SLO on, unqueued, about as often as on its best type.

    `prefill_samples_s` [gpu type, k]: its sampled prompts' prefill on each type; `gpus` [gpu
    type]: GPUs an instance takes (0: it cannot run there). A type whose share of prompts over the
    SLO is more than `tolerance` above the best type's is left out: no number of instances serves
    those prompts in time, and the monitor's p95 would ask for instance after instance.
    """
    over = np.where(gpus > 0, (prefill_samples_s > slo_s).mean(axis=1), np.inf)
    best = float(over.min())
    return tuple(t for t, share in zip(types, over, strict=True) if share <= best + tolerance)


def service_samples_s(prefill_s: NDArray[np.float64], steps: NDArray[np.float64], step_s: float) -> NDArray[np.float64]:
    """Each sampled request's time on an instance: its prefill plus its decode steps at the step time."""
    return np.asarray(prefill_s + steps * step_s)


def lost_in_flight(
    instances: int, busy: float, batch: int, service_s: NDArray[np.float64], drain_s: float | None
) -> float:
    """Requests lost when a server of `instances` goes: those in flight that cannot finish.

    In flight: instances x busy share x the batch an instance holds. Without a notice
    (`drain_s` None) all of them; with one, those whose service time exceeds the drain window
    (the time between the server's last batch and the reclaim).
    """
    in_flight = instances * min(max(busy, 0.0), 1.0) * batch
    if drain_s is None:
        return float(in_flight)
    too_long = float(np.mean(service_s > drain_s)) if service_s.size else 0.0
    return float(in_flight * too_long)


def stop_taking_batches_at(
    notice_at: float, reclaim_at: float, replacement_ready: float | None, drain_s: float
) -> float:
    """When a reclaimed server stops taking batches: once its replacement serves, and early enough to drain.

    Make-before-break: it keeps serving until the replacement is ready, but no later than the
    drain window before the reclaim (its longest request must finish), and not before the notice.
    """
    latest = reclaim_at - drain_s
    at = latest if replacement_ready is None else min(replacement_ready, latest)
    return max(notice_at, at)


def preferred_equivalents(
    held: NDArray[np.int64], capacity: NDArray[np.float64], preferred: Sequence[int], model_ids: Sequence[str]
) -> dict[str, int]:
    """Model -> the instances of its preferred type that serve what its held instances serve, rounded up.

    `held` [model, gpu type]: instances (ready plus loading) in one region; `capacity` [model, gpu
    type]: what one serves. The fleet MILP's demand is in instances of the preferred type (what the
    scaler sizes), so a model held on a slower type is not re-planned as if it were on the fast one.
    """
    result = {}
    for m, model_id in enumerate(model_ids):
        work = float((held[m] * capacity[m]).sum())
        unit = float(capacity[m, preferred[m]]) if capacity[m, preferred[m]] > 0 else float(capacity[m].max())
        if work > 0 and unit > 0:
            result[model_id] = max(1, math.ceil(work / unit - 1e-9))
    return result
