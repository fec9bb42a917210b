"""What one simulation run is: the seed's scale, the services' policies, the pricing and spot settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from services.cost.settings import CostSettings
from services.router.domain.batching import BatchStrategy
from services.router.settings import RouterSettings
from services.scaler.domain.policy import PolicyName
from services.scaler.settings import ScalerSettings
from shared.events import RoutingStrategy
from shared.performance import Storage

REGIONS: tuple[str, ...] = ("us-east-1", "eu-west-1", "ap-southeast-1")
# Users per region: the seed's GPU pools are split 1,700 / 1,000 / 650 over the three regions.
REGION_SHARES: tuple[float, ...] = (0.5, 0.3, 0.2)
# Local time = UTC + offset: the diurnal peaks follow the sun.
UTC_OFFSET_H: tuple[float, ...] = (-5.0, 0.0, 8.0)


class LatencyMeasure(StrEnum):
    """What a request's latency is: time to first token (streaming) or to its last token."""

    TTFT = "ttft"
    E2E = "e2e"


class Pricing(StrEnum):
    """How GPU hours are bought: reserved / spot / on-demand mix, or everything on demand."""

    MIXED = "mixed"
    ON_DEMAND = "on_demand"


class Placement(StrEnum):
    """Which GPU type new instances of a model go to: the preferred type first, or the fleet MILP's."""

    GREEDY = "greedy"  # the live allocator's rule (`plan_scaling` -> `allocate`): preferred type first
    MILP = "milp"  # `placement.milp_place` re-plans every `replan_interval_s`; greedy when it runs out of time


@dataclass(frozen=True)
class Workload:
    """The seed's traffic: requests a day over models with Zipf popularity, in three regions."""

    requests_per_day: float = 100e6
    models: int = 50
    zipf: float = 1.2
    diurnal_amplitude: float = 0.55  # peak-to-mean of a region's day, before the second harmonic
    daily_noise: float = 0.06  # day-to-day level change per model (lognormal sigma)
    warmup_days: int = 7
    length_samples: int = 128  # joint (prompt, output) lengths per model for the latency mixture
    trace: tuple[Path, ...] = ()  # user traces: replayed as they are (file stem = model id)
    trace_region: str = "us-east-1"
    trace_size: str = "13b"


@dataclass(frozen=True)
class SimOptions:
    """One run: workload, fleet, the services' settings, pricing, what the SLO measures."""

    workload: Workload = field(default_factory=Workload)
    seed: int = 20261204
    duration_s: float = 86_400.0
    step_s: float = 10.0
    fleet_gpus: int = 10_000
    policy: PolicyName = field(default_factory=lambda: ScalerSettings().policy)
    # The scaler's ceiling per model and region. Its default (64) is the local platform's; at seed
    # scale the busiest model needs ~110 in a region in its peak hour, so a deployment raises it.
    max_instances: int = 256
    tiers: bool = True
    preload: bool = True
    # False: reactive only. The scaler sees no forecast, only the last hour it observed (persistence,
    # full confidence), so capacity follows demand it has seen rather than demand to come.
    forecast: bool = True
    batching: BatchStrategy = field(default_factory=lambda: RouterSettings().default_batch_strategy)
    routing: RoutingStrategy = RoutingStrategy.BALANCED
    pricing: Pricing = Pricing.MIXED
    spot_share: float = field(default_factory=lambda: CostSettings().spot_interruption_tolerance)
    spot_reclaims_per_hour: float = 0.5  # published GPU spot data: one per 1.4-3.2 instance-hours
    # Spot interruption notice (AWS: 120 s). 0: none is acted on, the server goes at the reclaim and
    # its in-flight requests are lost. > 0: the allocator starts a replacement at the notice and the
    # server drains (make-before-break), so only requests longer than the drain window are lost.
    reclaim_notice_s: float = 0.0
    # The fleet loop (issue 15): where instances go, and how they are deployed.
    placement: Placement = Placement.GREEDY
    replan_interval_s: float = 3600.0
    milp_time_limit_s: float = 1.0
    # True: the MILP keeps each model off GPU types whose first token misses the SLO more often
    # than on its best type (`loop.slo_gpu_types`; TTFT runs only). False: the latency target alone.
    slo_types: bool = False
    # > 0: the scaler counts each model's capacity per instance over its burst factor, the q-quantile
    # of its 10 s arrivals over their hour's mean (`build.burst_factors`), so bursts find headroom.
    # 0: the capacity the scaler's round computes (the live default).
    burst_quantile: float = 0.0
    # True: each model runs the allocator planner's best single-GPU quantisation (fp16 / int8 / int4)
    # and the GPUs per instance follow from it (`gpu_share`); False: fp16 only.
    plans: bool = False
    storage: Storage = Storage.LOCAL_NVME  # where a cold start reads the weights from
    slo_ms: float = 2000.0
    latency: LatencyMeasure = LatencyMeasure.TTFT
    label: str = ""

    @property
    def steps(self) -> int:
        """Time steps in the run."""
        return max(1, round(self.duration_s / self.step_s))

    def name(self) -> str:
        """A short label for comparison tables."""
        if self.label:
            return self.label
        extras = [] if self.tiers else ["tiers off"]
        extras += [] if self.preload else ["preload off"]
        extras += [] if self.forecast else ["reactive (no forecast)"]
        extras += ["milp"] if self.placement is Placement.MILP else []
        extras += ["plans"] if self.plans else []
        return " ".join([self.policy.value, *extras])
