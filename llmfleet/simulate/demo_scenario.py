"""The live demo's own run in the simulator: its planned requests, fleet file, server cap and settings.

The demo's services read their settings (windows and cooldowns in wall seconds) from the
environment `llmfleet.demo.platform_settings` gives them; the simulator's policies read the same
settings the same way, so the scenario sets them while it builds and runs, and simulates wall
seconds. What differs from the seed's scenario is the servers: the demo's emulated Triton servers
run static batches (each lasts the performance model's `static_batch_ms`, or tinylm's CPU compute
when that is longer), start in seconds, and sit in one machine (no round trip between regions).
docs/simulator.md ("The live demo's prediction") says what is measured and what is assumed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from llmfleet import trace
from llmfleet.demo_fleet import DEMO_MODELS, EMULATED_MODEL, SERVER_MAX_BATCH, scaler_capacity
from llmfleet.simulate.build import Prepared, _placed_on
from llmfleet.simulate.catalogue import E2E_TARGET_MS, SimModel
from llmfleet.simulate.metrics import percentile
from llmfleet.simulate.options import REGIONS, LatencyMeasure, Pricing, SimOptions
from llmfleet.simulate.pricing import price_table
from llmfleet.simulate.runs import engine_for, policy_control
from llmfleet.simulate.scaler import ForecastCache
from llmfleet.simulate.service import ServiceTable, instance_gpus
from llmfleet.simulate.workload import START, Lengths, Traffic
from services.allocator.adapters.config import load_fleet
from services.cost.domain.pricing import Catalogue
from services.router.domain.batching import BatchLimits, limits_for
from services.router.settings import RouterSettings
from services.scaler.domain.policy import PolicyName
from services.scaler.domain.series import bucket_index
from services.scaler.settings import ScalerSettings
from shared.events import RoutingStrategy
from shared.performance import profile

if TYPE_CHECKING:
    from llmfleet.demo import DemoOptions  # demo.py imports this module: the type only

STEP_S = 0.25  # wall seconds: the demo's router batches wait ~0.1 s, its windows are 5 s
DRAIN_S = 15.0  # simulated after the last send, so the queues empty (the live demo drains too, then stops)
LATENCY_SAMPLES = 256
# Measured, not fitted: a demo server's start (tritonserver launch, tinylm load) to its ModelLoaded,
# from the allocator's first start of two live 45 s demos, which waited for no other (2.4 and 2.7 s;
# the later ones came ~3 s apart, one at a time: `Allocator.serial_starts`). docs/simulator.md.
SERVER_START_S = 2.6


@contextmanager
def environment(settings: Mapping[str, str]) -> Iterator[None]:
    """The services' settings as the live demo's processes see them, restored afterwards."""
    before = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def demo_models(fleet_path: Path) -> list[SimModel]:
    """The demo's models with the requirements of its own fleet file (7B's whole-answer target)."""
    config = load_fleet(fleet_path)
    shares = (1.0, 0.0, 0.0)  # unused for a replayed run: the planned requests carry their regions
    return [
        SimModel(model_id, "7b", "conv", 1 / len(DEMO_MODELS), shares, E2E_TARGET_MS["7b"], config.models[model_id])
        for model_id in DEMO_MODELS
    ]


def demo_traffic(models: list[SimModel], planned: Sequence[trace.PlannedRequest], seed: int) -> Traffic:
    """The planned requests per step (wall seconds), model and users' region; their lengths as sent."""
    rng = np.random.default_rng(seed)
    ids = [m.model_id for m in models]
    last = max(r.send_at_s for r in planned)
    steps = int(np.ceil((last + DRAIN_S) / STEP_S))
    arrivals = np.zeros((steps, len(models), len(REGIONS)))
    for r in planned:
        arrivals[int(r.send_at_s // STEP_S), ids.index(r.model_id), REGIONS.index(r.region)] += 1
    lengths, samples = [], []
    for model_id in ids:
        mine = [r for r in planned if r.model_id == model_id] or list(planned)
        prompt = np.array([max(1, r.prompt_tokens) for r in mine], dtype=np.float64)
        output = np.array([max(1, r.max_tokens) for r in mine], dtype=np.float64)
        lengths.append(Lengths(prompt, output))
        rows = rng.choice(len(prompt), size=LATENCY_SAMPLES, replace=len(prompt) < LATENCY_SAMPLES)
        samples.append(Lengths(prompt[rows], output[rows]))
    warmup = np.zeros((1, len(models), len(REGIONS)))  # the demo starts empty: no history
    return Traffic(models, arrivals, lengths, samples, warmup, STEP_S, START)


def batch_s(gpu_type: str, prompts: np.ndarray, output: int, cpu_ms: float) -> float:
    """One static batch on a demo server: the modelled GPU time, or tinylm's compute when longer."""
    modelled = profile(gpu_type, EMULATED_MODEL).static_batch_ms(prompts.astype(int), output)
    return max(modelled, cpu_ms * len(prompts) * output) / 1000


def expected_batch(traffic: Traffic, limits: BatchLimits) -> list[int]:
    """Rows of a model's router batch: what arrives in its wait at the model's mean rate per region."""
    seconds = traffic.steps * traffic.step_s - DRAIN_S
    per_region = traffic.arrivals.sum(axis=0) / max(seconds, traffic.step_s)  # [model, region]
    busiest = per_region.max(axis=1)
    return [int(min(limits.max_size, round(1 + rate * limits.max_wait_s))) for rate in busiest]


def static_table(
    traffic: Traffic, gpu_types: tuple[str, ...], gpus: np.ndarray, limits: BatchLimits, cpu_ms: float
) -> ServiceTable:
    """Every demo model on every GPU type as the emulated servers run it: static batches.

    A request's latency is its router batch's (`expected_batch` rows, its own prompt among the
    model's mean ones); a server's rate is that of full router batches run one after another (at
    the demo's load they seldom queue and merge into Triton's larger ones). No decode
    steps are left to the engine: the batch time holds them.
    """
    models, types = len(traffic.models), len(gpu_types)
    k = len(traffic.samples[0].prompt)
    latency = np.full((models, types, k), np.inf)
    capacity, per_request = np.zeros((models, types)), np.full((models, types), np.inf)
    router_rows = expected_batch(traffic, limits)
    for m in range(models):
        lengths, sample = traffic.lengths[m], traffic.samples[m]
        mean_prompt, output = float(lengths.prompt.mean()), round(float(lengths.output.mean()))
        for g, gpu_type in enumerate(gpu_types):
            if gpus[m, g] == 0:
                continue
            # The servers were 34-37% busy in the live runs: a server's largest batch would overstate its rate.
            rows = limits.max_size
            capacity[m, g] = rows / batch_s(gpu_type, np.full(rows, mean_prompt), output, cpu_ms)
            per_request[m, g] = 1 / capacity[m, g]
            others = np.full(router_rows[m] - 1, mean_prompt)
            latency[m, g] = [
                batch_s(gpu_type, np.append(others, p), int(o), cpu_ms)
                for p, o in zip(sample.prompt, sample.output, strict=True)
            ]
    return ServiceTable(
        gpu_types=gpu_types, gpus=gpus, mean_prefill_s=per_request, mean_steps=np.zeros(models),
        b_max=np.full((models, types), SERVER_MAX_BATCH, dtype=np.int64), step_s=np.zeros((models, types, 2)),
        capacity_rps=capacity, prefill_samples_s=latency, step_samples=np.zeros((models, k)),
        cold_start_s=np.full(models, SERVER_START_S),
    )  # fmt: skip


def demo_forecasts(traffic: Traffic, settings: ScalerSettings) -> ForecastCache:
    """The router's demand windows as the scaler reads them: the run's own buckets, no history before."""
    per_bucket = max(1, round(settings.bucket_s / traffic.step_s))
    buckets = int(np.ceil(traffic.steps / per_bucket))
    padded = np.zeros((buckets * per_bucket, *traffic.arrivals.shape[1:]))
    padded[: traffic.steps] = traffic.arrivals
    counts = padded.reshape(buckets, per_bucket, -1).sum(axis=1)
    keys = [(m.model_id, region) for m in traffic.models for region in REGIONS]
    return ForecastCache.from_counts(settings, keys, bucket_index(traffic.start, settings.bucket_s), counts)


def demo_prepared(
    planned: Sequence[trace.PlannedRequest], fleet_path: Path, options: SimOptions, max_tokens_cap: int, cpu_ms: float
) -> Prepared:
    """The demo's workload-level inputs: its traffic, fleet file (no round trips: one machine), static servers."""
    traffic = demo_traffic(demo_models(fleet_path), planned, options.seed)
    config = load_fleet(fleet_path)
    # One machine serves every region: the live demo's requests pay no round trip between them.
    fleet = replace(config, region_rtt_ms={(a, b): 0.0 for a in REGIONS for b in REGIONS if a < b})
    gpu_types = tuple(sorted(fleet.gpus))
    gpus = instance_gpus(traffic, fleet, gpu_types)
    limits = limits_for(options.batching, RouterSettings().default_token_budget)
    table = static_table(traffic, gpu_types, gpus, limits, cpu_ms)
    preferred = np.array([_placed_on(table, i, m.requirement.preferred_gpu) for i, m in enumerate(traffic.models)])
    catalogue = Catalogue()
    return Prepared(
        options, traffic, fleet, limits, table, demo_forecasts(traffic, ScalerSettings()),
        {k: float(v) for k, v in scaler_capacity(max_tokens_cap).items()}, preferred, catalogue,
        price_table(catalogue, gpu_types), np.zeros((len(REGIONS), len(gpu_types))),
    )  # fmt: skip


def predict(
    planned: Sequence[trace.PlannedRequest],
    fleet_path: Path,
    settings: Mapping[str, str],
    policy: PolicyName,
    routing: RoutingStrategy,
    max_servers: int,
    max_tokens_cap: int,
    cpu_ms_per_row_token: float,
) -> dict[str, Any]:
    """The simulator's figures for the demo's run, the services' policies on its settings.

    `cpu_ms_per_row_token`: tinylm's compute on this machine (`demo_cpu.measure_ms_per_row_token`).
    """
    started = datetime.now()
    with environment(settings):
        scaler = ScalerSettings()
        options = SimOptions(
            duration_s=0.0, step_s=STEP_S, policy=policy, max_instances=scaler.max_instances,
            batching=RouterSettings().default_batch_strategy, routing=routing, pricing=Pricing.ON_DEMAND,
            spot_reclaims_per_hour=0.0, latency=LatencyMeasure.E2E, label="demo",
        )  # fmt: skip
        prepared = demo_prepared(planned, fleet_path, options, max_tokens_cap, cpu_ms_per_row_token)
        control = policy_control(prepared, replace(options, max_instances=scaler.max_instances))
        control.allocator.max_servers, control.allocator.serial_starts = max_servers, True
        accounts = engine_for(prepared, options, control).run(control)
    counts = {**control.allocator.counts, **control.counts}
    hist = accounts.hist.sum(axis=(0, 1))
    allocated = float(accounts.allocated_gpu_s.sum())
    return {
        "p95_ms": round(percentile(hist, 0.95) * 1000, 1),
        "p50_ms": round(percentile(hist, 0.50) * 1000, 1),
        "requests_ok": round(float(accounts.served.sum())),
        "requests_sent": len(planned),
        "servers_started": int(counts.get("servers_started", 0)),
        "scaling_actions": int(sum(v for k, v in counts.items() if k.startswith("action_"))),
        "allocation_failed": int(counts.get("allocation_failed", 0)),
        "utilization": round(float(accounts.busy_gpu_s.sum()) / allocated, 3) if allocated else None,
        "assumptions": {
            "cpu_ms_per_row_token": round(cpu_ms_per_row_token, 3),
            "server_start_s": SERVER_START_S,
            "step_s": STEP_S,
        },
        "wall_s": round((datetime.now() - started).total_seconds(), 2),
    }


def demo_prediction(
    options: DemoOptions, planned: Sequence[trace.PlannedRequest], fleet_path: Path, settings: Mapping[str, str]
) -> dict[str, Any]:
    """The prediction for a demo run, tinylm's compute measured on this machine first."""
    from llmfleet.simulate.demo_cpu import measure_ms_per_row_token  # loads tinylm: only when a demo runs

    cpu_ms = measure_ms_per_row_token()
    return predict(
        planned, fleet_path, settings, options.scaling_policy, options.routing, options.max_servers,
        options.max_tokens_cap, cpu_ms,
    )  # fmt: skip
