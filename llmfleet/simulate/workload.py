"""The seed's traffic from the Azure 2023 traces: arrivals per step, model and users' region, and lengths.

The mapping (docs/simulator.md): a model's mean rate is its Zipf share of the requests a day, split
over the regions by its own shares; each region follows a diurnal curve in its local time (and
weekends are quieter); within the hour, arrivals follow the trace's own arrival pattern (counts
per step over its hour, cycled, each stream from its own offset), drawn as Poisson counts. A
stream n times busier than the trace is taken as n independent copies of it, so its relative
deviation from the mean shrinks by sqrt(n) (the code trace alone is empty half of its 10 s steps). Prompt
and output lengths are the trace's rows (code or conversation, per model). A warm-up history of
hourly counts from the same generator lets the forecasts start with a week of data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from llmfleet import trace
from llmfleet.simulate.catalogue import SimModel
from llmfleet.simulate.options import REGIONS, UTC_OFFSET_H, Workload

Array = NDArray[np.float64]
# Day 0 of every run: a Wednesday at 00:00 UTC, so the warm-up week holds a weekend.
START = datetime(2026, 1, 7, tzinfo=UTC)
WEEKEND_FACTOR = 0.75
KIND_FILES = {"code": "azure-code", "conv": "azure-conversation"}


@dataclass(frozen=True)
class Lengths:
    """Prompt and output tokens of every row of a trace."""

    prompt: Array
    output: Array


@dataclass
class Traffic:
    """What the run serves: arrivals[step, model, users' region], lengths per model, warm-up counts."""

    models: list[SimModel]
    arrivals: Array
    lengths: list[Lengths]
    samples: list[Lengths]  # a fixed draw per model for the latency mixture
    warmup: Array  # requests per hour before the run: [hour, model, region]
    step_s: float
    start: datetime = START

    @property
    def steps(self) -> int:
        """Steps the traffic covers."""
        return int(self.arrivals.shape[0])


def read_lengths(path: Path) -> tuple[Lengths, Array]:
    """A trace file's lengths and its arrival offsets (seconds from its first request)."""
    rows = trace.read({path.stem: path})
    prompt = np.array([r.context_tokens for r in rows], dtype=np.float64)
    output = np.array([max(1, r.generated_tokens) for r in rows], dtype=np.float64)
    return Lengths(prompt, output), np.array([r.offset_s for r in rows], dtype=np.float64)


def burst_pattern(offsets: Array, step_s: float) -> Array:
    """Arrivals per step over the trace's span, relative to their mean (the within-hour shape)."""
    bins = max(1, math.ceil((offsets.max() + 1e-9) / step_s))
    counts = np.bincount((offsets // step_s).astype(int), minlength=bins)[:bins].astype(np.float64)
    return np.asarray(counts / counts.mean())


def diurnal(hours_utc: Array, offset_h: float, amplitude: float) -> Array:
    """A region's load relative to its daily mean: peak mid-afternoon local time, trough before dawn."""
    local = (hours_utc + offset_h) % 24
    return np.asarray(
        1.0 + amplitude * np.cos(2 * np.pi * (local - 15) / 24) + 0.15 * np.cos(4 * np.pi * (local - 11) / 24)
    )


def day_factors(days: NDArray[np.int64], models: int, sigma: float, rng: np.random.Generator) -> Array:
    """Per day and model: weekday or weekend, times a day-to-day lognormal level."""
    weekday = np.array([(START + timedelta(days=int(d))).weekday() for d in days])
    base = np.where(weekday >= 5, WEEKEND_FACTOR, 1.0)
    return np.asarray(base[:, None] * rng.lognormal(0.0, sigma, size=(len(days), models)))


def mean_rates(models: list[SimModel], per_day: float) -> Array:
    """Mean requests per second of each model in each users' region: [model, region]."""
    return np.array([[per_day / 86_400 * m.share * s for s in m.region_shares] for m in models])


def rates(models: list[SimModel], workload: Workload, seconds: Array, rng: np.random.Generator) -> Array:
    """Expected requests per second at each instant (seconds from START): [time, model, region]."""
    days = np.floor(seconds / 86_400).astype(np.int64)
    unique, index = np.unique(days, return_inverse=True)
    level = day_factors(unique, len(models), workload.daily_noise, rng)[index]
    shape = np.stack([diurnal(seconds / 3600, off, workload.diurnal_amplitude) for off in UTC_OFFSET_H], axis=-1)
    return np.asarray(mean_rates(models, workload.requests_per_day)[None] * level[:, :, None] * shape[:, None, :])


def seed_traffic(models: list[SimModel], workload: Workload, duration_s: float, step_s: float, seed: int) -> Traffic:
    """The seed's workload: Poisson arrivals shaped by the diurnal curves and the traces' bursts."""
    rng = np.random.default_rng(seed)
    by_kind = {kind: read_lengths(trace.BUILTIN_TRACES["azure-llm-2023"][name]) for kind, name in KIND_FILES.items()}
    steps = max(1, round(duration_s / step_s))
    history_s = np.arange(-workload.warmup_days * 24, 0, dtype=np.float64) * 3600.0 + 1800.0  # mid-hours
    warm_rng, day_rng = np.random.default_rng(seed + 1), np.random.default_rng(seed + 2)
    warmup = rng.poisson(rates(models, workload, history_s, warm_rng) * 3600.0).astype(np.float64)
    mean = rates(models, workload, (np.arange(steps, dtype=np.float64) + 0.5) * step_s, day_rng)
    bursts = {kind: burst_pattern(offsets, step_s) for kind, (_, offsets) in by_kind.items()}
    trace_rps = {kind: len(offsets) / max(float(offsets.max()), 1.0) for kind, (_, offsets) in by_kind.items()}
    copies = np.maximum(mean.mean(axis=0) / np.array([[trace_rps[m.kind]] for m in models]), 1.0)  # [model, region]
    shape = np.ones_like(mean)
    for m, model in enumerate(models):
        pattern = bursts[model.kind]
        for r in range(len(REGIONS)):
            start = int(rng.integers(len(pattern)))
            deviation = pattern[(np.arange(steps) + start) % len(pattern)] - 1.0
            shape[:, m, r] = np.maximum(1.0 + deviation / np.sqrt(copies[m, r]), 0.0)
    arrivals = rng.poisson(mean * shape * step_s).astype(np.float64)
    lengths = [by_kind[m.kind][0] for m in models]
    return Traffic(
        models, arrivals, lengths, [_sample(x, workload.length_samples, rng) for x in lengths], warmup, step_s
    )


def _sample(lengths: Lengths, count: int, rng: np.random.Generator) -> Lengths:
    rows = rng.choice(len(lengths.prompt), size=count, replace=len(lengths.prompt) < count)
    return Lengths(lengths.prompt[rows], lengths.output[rows])


def trace_traffic(
    models: list[SimModel], files: dict[str, Path], workload: Workload, step_s: float, seed: int
) -> Traffic:
    """User traces replayed as they are: each file one model in `trace_region`; warm-up flat at its mean."""
    rng = np.random.default_rng(seed)
    rows = trace.read(files)  # one clock over every file, so their relative timing stays
    span = trace.span_s(rows)
    steps = max(1, math.ceil((span + 1e-9) / step_s))
    region = REGIONS.index(workload.trace_region)
    arrivals = np.zeros((steps, len(models), len(REGIONS)))
    warmup = np.zeros((workload.warmup_days * 24, len(models), len(REGIONS)))
    lengths = []
    for m, model in enumerate(models):
        mine = [r for r in rows if r.model_id == model.model_id]
        offsets = np.array([r.offset_s for r in mine])
        arrivals[:, m, region] = np.bincount((offsets // step_s).astype(int), minlength=steps)[:steps]
        warmup[:, m, region] = len(mine) / max(span, step_s) * 3600.0
        prompt = np.array([r.context_tokens for r in mine], dtype=np.float64)
        lengths.append(Lengths(prompt, np.array([max(1, r.generated_tokens) for r in mine], dtype=np.float64)))
    return Traffic(
        models, arrivals, lengths, [_sample(x, workload.length_samples, rng) for x in lengths], warmup, step_s
    )
