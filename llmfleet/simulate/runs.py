"""One run of the services' policies on prepared inputs: build the fleet and the controls, then loop."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np

from llmfleet.simulate.allocator import Allocator
from llmfleet.simulate.build import Prepared, burst_factors
from llmfleet.simulate.catalogue import SimModel
from llmfleet.simulate.control import PolicyControl
from llmfleet.simulate.engine import Control, Engine
from llmfleet.simulate.fleet import Fleet
from llmfleet.simulate.held import Held
from llmfleet.simulate.metrics import Accounts
from llmfleet.simulate.monitor import Monitor
from llmfleet.simulate.options import REGIONS, LatencyMeasure, Pricing, SimOptions
from llmfleet.simulate.pricing import ON_DEMAND, Purchase
from llmfleet.simulate.scaler import Scaler
from services.allocator.settings import AllocatorSettings
from services.cost.settings import CostSettings
from services.monitor.settings import MonitorSettings
from services.router.domain.admission import AdmissionLimits
from services.router.domain.cold_start import ColdStartHold
from services.router.settings import RouterSettings
from services.scaler.domain.planner import PlannedAction
from services.scaler.domain.policy import POLICIES
from services.scaler.domain.tiers import Tier
from services.scaler.settings import ScalerSettings
from shared.events import ActionKind


@dataclass
class RunResult:
    """What one run measured, and what its controls counted."""

    name: str
    options: SimOptions
    accounts: Accounts
    models: list[SimModel] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    queued_at_end: float = 0.0
    held_at_end: float = 0.0


def tick_steps(options: SimOptions) -> int:
    """Steps per control tick: the scaler's evaluation interval."""
    return max(1, round(ScalerSettings().evaluation_interval_s / options.step_s))


def held_requests(control: Control) -> Held:
    """The router's cold-start hold and admission limits from its settings, asking `control`."""
    s = RouterSettings()
    limits = AdmissionLimits(s.max_queue_per_model, tuple(s.cold_start_models), s.max_cold_start_models)
    return Held(ColdStartHold(s.cold_start_timeout_s, s.model_request_cooldown_s), limits, control.model_requested)


def engine_for(prepared: Prepared, options: SimOptions, control: Control, local: bool = False) -> Engine:
    """The loop over the prepared traffic with `options`' routing and SLO (`local`: users stay home)."""
    return Engine(
        prepared.traffic, prepared.table, options, prepared.limits, prepared.rtt_s, held_requests(control),
        tick_steps(options), prepared.prices[:, :, ON_DEMAND], local,
    )  # fmt: skip


def policy_control(prepared: Prepared, options: SimOptions) -> PolicyControl:
    """Fleet, allocator, scaler, monitor and cost rules wired as the services are."""
    models = {m.model_id: i for i, m in enumerate(prepared.traffic.models)}
    fleet = Fleet(prepared.fleet, models, prepared.table.gpu_types, prepared.table.gpus)
    reserved = prepared.reserved if options.pricing is Pricing.MIXED else np.zeros_like(prepared.reserved)
    purchase = Purchase(options.pricing, prepared.prices, reserved, options.spot_share)
    allocator = Allocator(fleet, prepared.table, purchase, AllocatorSettings().max_gpus_per_server)
    scaler = Scaler(
        ScalerSettings(max_instances=options.max_instances),
        options.policy,
        scaler_capacity_rph(prepared, options),
        prepared.forecasts,
        options.tiers,
        options.preload,
        options.forecast,
    )
    tick_s = tick_steps(options) * options.step_s
    hazard = options.spot_reclaims_per_hour if options.pricing is Pricing.MIXED else 0.0
    control = PolicyControl(
        fleet, allocator, scaler, Monitor(MonitorSettings().signal_cooldown_s), prepared.catalogue,
        CostSettings().params().thresholds, prepared.traffic.start, 1 - math.exp(-hazard * tick_s / 3600),
        np.random.default_rng(options.seed + 7), list(models),
    )  # fmt: skip
    control.notice_s = options.reclaim_notice_s
    control.placement = options.placement
    control.replan_interval_s = options.replan_interval_s
    control.milp_time_limit_s = options.milp_time_limit_s
    control.milp_fleet = prepared.milp_fleet()
    if options.slo_types and options.latency is LatencyMeasure.TTFT:
        control.milp_gpu_types = prepared.slo_types(options.slo_ms / 1000)
    return control


def scaler_capacity_rph(prepared: Prepared, options: SimOptions) -> dict[str, float]:
    """The scaler's capacity per instance of each model: the round's, over its burst factor when asked."""
    if options.burst_quantile <= 0:
        return prepared.capacity_rph
    factors = burst_factors(prepared.traffic.arrivals, prepared.traffic.step_s, options.burst_quantile)
    return {m.model_id: prepared.capacity_rph[m.model_id] / factors[i] for i, m in enumerate(prepared.traffic.models)}


def warm_start(prepared: Prepared, control: PolicyControl) -> None:
    """The fleet at t=0 as the policy keeps it: each model's last warm-up hour at the scale-up utilisation."""
    traffic, table = prepared.traffic, prepared.table
    up = POLICIES[control.scaler.policy].scale_up_utilization
    headroom = [prepared.capacity_rph[m.model_id] / control.scaler.capacity_rph[m.model_id] for m in traffic.models]
    for m, model in enumerate(traffic.models):
        g = int(prepared.preferred[m])
        for r, region in enumerate(REGIONS):
            rate = traffic.warmup[-1, m, r] / 3600
            if rate <= 0:
                continue
            target = max(1, math.ceil(rate * headroom[m] / (table.capacity_rps[m, g] * up)))
            action = PlannedAction(
                model.model_id, region, ActionKind.SCALE_UP, 0, target, "high", "warm_start", "", Tier.HOT
            )
            for server_id, model_id in control.allocator.act(action, -3600.0) or set():
                control.scaler.loaded(server_id, model_id, region, control.at(-3600.0))
    control.fleet.finish_loads(0.0)
    control.allocator.counts.clear()


def run_policy(prepared: Prepared, options: SimOptions) -> RunResult:
    """The services' policies over the whole traffic; wall time measured."""
    started = time.perf_counter()
    control = policy_control(prepared, options)
    if not options.workload.trace:
        warm_start(prepared, control)
    engine = engine_for(prepared, options, control)
    accounts = engine.run(control)
    counts: dict[str, float] = {**control.allocator.counts, **control.counts, **control.figures}
    counts |= {f"gpu_hours_{pricing}": round(hours, 1) for pricing, hours in control.gpu_hours.items()}
    return RunResult(
        options.name(), options, accounts, prepared.traffic.models, counts, dict(control.monitor.firings),
        control.allocator.failures, time.perf_counter() - started, float(engine.queue.sum()), engine.held.count(),
    )  # fmt: skip


def at_hour(prepared: Prepared, hours: float) -> str:
    """Wall-clock label of a simulated hour (UTC)."""
    return (prepared.traffic.start + timedelta(hours=hours)).strftime("%H:%M")
