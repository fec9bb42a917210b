"""Everything a run needs that depends only on the workload: models, traffic, fleet, service table, forecasts.

Built once and shared by the policy runs and the baselines of one comparison (they see the same
requests, so the scaler's forecasts, which read only the demand, are computed once).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from llmfleet.simulate.catalogue import SimModel, catalogue, requirement, target_ms
from llmfleet.simulate.fleet import scaled_fleet
from llmfleet.simulate.loop import deployed_quantisation, deployed_requirement, slo_gpu_types
from llmfleet.simulate.options import REGIONS, SimOptions
from llmfleet.simulate.pricing import price_table, reserved_commitment
from llmfleet.simulate.scaler import ForecastCache
from llmfleet.simulate.service import ServiceTable, service_table
from llmfleet.simulate.workload import Traffic, seed_traffic, trace_traffic
from services.allocator.adapters.config import load_fleet
from services.allocator.domain.fleet import FleetConfig
from services.allocator.settings import DEFAULT_FLEET
from services.cost.domain.pricing import Catalogue
from services.cost.settings import CostSettings
from services.router.domain.batching import BatchLimits, limits_for
from services.router.settings import RouterSettings
from services.scaler.domain.capacity import FALLBACK_RPH, ModelSpec, Reference, capacities
from services.scaler.domain.series import bucket_index
from services.scaler.settings import ScalerSettings

# Round trips between the regions (as benchmarks/allocator.py assumes): a request served away pays one.
RTT_MS = {
    ("us-east-1", "eu-west-1"): 80.0,
    ("us-east-1", "ap-southeast-1"): 180.0,
    ("eu-west-1", "ap-southeast-1"): 160.0,
}


@dataclass(frozen=True)
class Prepared:
    """The workload-level inputs of every run of one comparison."""

    options: SimOptions
    traffic: Traffic
    fleet: FleetConfig
    limits: BatchLimits
    table: ServiceTable
    forecasts: ForecastCache
    capacity_rph: dict[str, float]
    preferred: np.ndarray  # [model] the GPU type index each model is placed on first
    catalogue: Catalogue
    prices: np.ndarray  # [region, gpu type, class]
    reserved: np.ndarray  # [region, gpu type] GPUs committed (mixed pricing)
    quantisations: tuple[str, ...] = ()  # [model] the deployed precision (plans); empty: fp16 for all

    def milp_fleet(self) -> FleetConfig:
        """The fleet as the MILP sees it: each model's own requirement at its deployed quantisation.

        `gpu_share` then sizes and latency-checks every option with the performance model at that
        precision (the allocator's scaling path is given the memory-substituted twin instead).
        """
        models = {
            m.model_id: replace(m.requirement, quantisations=(self.quantisations[i] if self.quantisations else "fp16",))
            for i, m in enumerate(self.traffic.models)
        }
        return replace(self.fleet, models=models)

    def slo_types(self, slo_s: float) -> dict[str, tuple[str, ...]]:
        """Per model, the GPU types its first token meets the SLO on about as often as on its best (`slo_gpu_types`)."""
        t = self.table
        return {
            m.model_id: slo_gpu_types(t.prefill_samples_s[i], t.gpus[i], slo_s, t.gpu_types)
            for i, m in enumerate(self.traffic.models)
        }

    @property
    def rtt_s(self) -> np.ndarray:
        """Round trip [users' region, serving region] in seconds."""
        return np.array([[self.fleet.rtt_ms(u, r) / 1000 for r in REGIONS] for u in REGIONS])


def trace_models(files: dict[str, Path], options: SimOptions) -> list[SimModel]:
    """One model per trace file (id = file stem), all of the workload's trace size, in the trace's region."""
    w = options.workload
    shares = tuple(1.0 if r == w.trace_region else 0.0 for r in REGIONS)
    return [
        SimModel(model_id, w.trace_size, "conv", 1.0 / len(files), shares,
                 target_ms(w.trace_size, "conv", options.latency), requirement(model_id, w.trace_size))
        for model_id in files
    ]  # fmt: skip


def prepare(options: SimOptions) -> Prepared:
    """Models, traffic, fleet and service table; the forecasts' demand history; the reserved commitment."""
    w = options.workload
    if w.trace:
        files = {path.stem: path for path in w.trace}
        models = trace_models(files, options)
        traffic = trace_traffic(models, files, w, options.step_s, options.seed)
    else:
        models = catalogue(w, options.latency, options.seed)
        traffic = seed_traffic(models, w, options.duration_s, options.step_s, options.seed)
    fleet = replace(scaled_fleet(load_fleet(DEFAULT_FLEET), options.fleet_gpus, models), region_rtt_ms=RTT_MS)
    quantisations = None
    if options.plans:  # the allocator is given each model as deployed (its quantisation's memory)
        quantisations = [deployed_quantisation(m.requirement, fleet) for m in models]
        deployed = {
            m.model_id: deployed_requirement(m.requirement, q) for m, q in zip(models, quantisations, strict=True)
        }
        fleet = replace(fleet, models=deployed)
    router = RouterSettings()
    limits = limits_for(options.batching, router.default_token_budget)
    table = service_table(traffic, fleet, limits, options.storage, quantisations)
    preferred = np.array([_placed_on(table, i, m.requirement.preferred_gpu) for i, m in enumerate(models)])
    capacity_rph = scaler_capacity(models)
    catalogue_ = Catalogue()
    prices = price_table(catalogue_, table.gpu_types)
    return Prepared(
        options, traffic, fleet, limits, table, forecast_cache(traffic), capacity_rph, preferred, catalogue_, prices,
        _commitment(traffic, table, preferred, catalogue_, options), tuple(quantisations or ()),
    )  # fmt: skip


def scaler_capacity(models: list[SimModel]) -> dict[str, float]:
    """Each model's capacity per instance as the scaler's round computes it (`capacity_per_instance`).

    The live round reads the models' specs from the fleet file; here they come from the catalogue
    (the same fields: the performance model's name, the preferred GPU, the latency target).
    """
    settings = ScalerSettings()
    if settings.requests_per_instance_hour is not None:
        return {m.model_id: settings.requests_per_instance_hour for m in models}
    specs = {
        m.model_id: ModelSpec(
            m.model_id, m.requirement.emulates, m.requirement.preferred_gpu, m.requirement.latency_target_ms
        )
        for m in models
    }
    reference = Reference(
        settings.reference_prompt_tokens, settings.reference_output_tokens, settings.latency_target_ms,
        settings.max_batch,
    )  # fmt: skip
    known = capacities(specs, reference)
    return {m.model_id: known[m.model_id].requests_per_hour if m.model_id in known else FALLBACK_RPH for m in models}


def burst_factors(arrivals: np.ndarray, step_s: float, quantile: float) -> np.ndarray:
    """Each model's burst factor [model]: the `quantile` of its steps' arrivals over their hour's mean.

    Per users' region, then weighted by the region's requests. What a scaler would measure of a
    model's arrivals at the monitor's resolution (here: on the day itself, which only the shape
    of the bursts is taken from, not the level); never below 1.
    """
    per_hour = max(1, round(3600 / step_s))
    steps = arrivals.shape[0] // per_hour * per_hour
    if steps == 0:
        return np.ones(arrivals.shape[1])
    hours = arrivals[:steps].reshape(-1, per_hour, *arrivals.shape[1:])
    mean = hours.mean(axis=1, keepdims=True)
    ratio = np.divide(hours, mean, out=np.full_like(hours, np.nan), where=mean > 0).reshape(steps, *arrivals.shape[1:])
    with warnings.catch_warnings():  # a (model, region) with no arrivals at all has no factor: 1
        warnings.simplefilter("ignore", RuntimeWarning)
        factor = np.nan_to_num(np.nanquantile(ratio, quantile, axis=0), nan=1.0)  # [model, region]
    weights = arrivals.sum(axis=0)
    total = weights.sum(axis=1)
    weighted = np.divide((factor * weights).sum(axis=1), total, out=np.ones_like(total), where=total > 0)
    return np.asarray(np.maximum(weighted, 1.0))


def _placed_on(table: ServiceTable, m: int, preferred_gpu: str) -> int:
    """The model's preferred GPU type if it can run there, else the one needing fewest GPUs per request."""
    preferred = table.gpu_types.index(preferred_gpu)
    if table.gpus[m, preferred] > 0:
        return preferred
    per_request = np.where(table.capacity_rps[m] > 0, table.gpus[m] / np.maximum(table.capacity_rps[m], 1e-12), np.inf)
    return int(np.argmin(per_request))


def forecast_cache(traffic: Traffic) -> ForecastCache:
    """The demand history the scaler reads: warm-up hours, then the run's hours, per (model, region)."""
    settings = ScalerSettings()
    hours = int(np.ceil(traffic.steps * traffic.step_s / 3600))
    per_hour = max(1, round(3600 / traffic.step_s))
    padded = np.zeros((hours * per_hour, *traffic.arrivals.shape[1:]))
    padded[: traffic.steps] = traffic.arrivals
    run = padded.reshape(hours, per_hour, *traffic.arrivals.shape[1:]).sum(axis=1)
    hourly = np.concatenate([traffic.warmup, run]).reshape(len(traffic.warmup) + hours, -1)
    keys = [(m.model_id, region) for m in traffic.models for region in REGIONS]
    first = bucket_index(traffic.start, 3600) - len(traffic.warmup)
    if settings.bucket_s != 3600:
        raise ValueError("the simulator feeds the scaler hourly demand buckets (LLMFLEET_SCALER_BUCKET_S=3600)")
    return ForecastCache.from_counts(settings, keys, first, hourly)


def _commitment(
    traffic: Traffic, table: ServiceTable, preferred: np.ndarray, cat: Catalogue, options: SimOptions
) -> np.ndarray:
    """Reserved GPUs per pool from the warm-up's last day, sized by the cost service's mix."""
    day = traffic.warmup[-24:]  # [hour, model, region] requests
    gpus = np.zeros((len(day), len(REGIONS), len(table.gpu_types)))
    for m in range(len(traffic.models)):
        g = int(preferred[m])
        per_gpu_hour = table.capacity_rps[m, g] * 3600 / table.gpus[m, g]
        gpus[:, :, g] += day[:, m, :] / per_gpu_hour
    params = CostSettings().params()
    return reserved_commitment(cat, table.gpu_types, gpus, options.spot_share, params.target_utilization)
