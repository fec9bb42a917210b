"""The baselines: an oracle that knows the demand, and static provisioning for the day's peak.

Both serve each region's users in their region, on each model's preferred GPU type, priced on
demand. The oracle holds, in each control interval, the fewest instances whose capacity covers
every step's arrivals of that interval (so no queue forms: the fluid model's minimum meeting the
SLO), and pays for each added instance from the moment its cold start begins (a load time before
it is needed). Static holds the oracle's largest count of the day all day. The third baseline
(everything on demand) is the policy run again with on-demand pricing (`runs.run_policy`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from llmfleet.simulate.build import Prepared
from llmfleet.simulate.engine import Engine
from llmfleet.simulate.options import SimOptions
from llmfleet.simulate.pricing import ON_DEMAND
from llmfleet.simulate.runs import RunResult, engine_for, tick_steps

Ints = NDArray[np.int64]


def oracle_counts(prepared: Prepared, per_tick: int) -> Ints:
    """Instances per [interval, model, region] on each model's preferred type: the interval's peak step covered."""
    traffic, table = prepared.traffic, prepared.table
    ticks = math.ceil(traffic.steps / per_tick)
    padded = np.zeros((ticks * per_tick, *traffic.arrivals.shape[1:]))
    padded[: traffic.steps] = traffic.arrivals
    peak = padded.reshape(ticks, per_tick, *traffic.arrivals.shape[1:]).max(axis=1)  # [tick, model, region]
    models = np.arange(len(traffic.models))
    per_step = table.capacity_rps[models, prepared.preferred] * traffic.step_s  # [model]
    return np.asarray(np.ceil(peak / per_step[None, :, None] - 1e-9), dtype=np.int64)


def loading_gpus(prepared: Prepared, counts: Ints, per_tick: int) -> NDArray[np.float64]:
    """GPUs loading at each step: every added instance from its cold start until its interval begins."""
    table, steps = prepared.table, prepared.traffic.steps
    models = np.arange(counts.shape[1])
    gpus = table.gpus[models, prepared.preferred]  # [model]
    lead = np.ceil(table.cold_start_s / prepared.traffic.step_s).astype(np.int64)  # [model] steps
    added = np.maximum(np.diff(counts, axis=0), 0)  # [tick - 1, model, region], needed from tick + 1
    diff = np.zeros(steps + 1)
    for j, m, r in zip(*np.nonzero(added), strict=True):
        end = (j + 1) * per_tick
        start = max(0, end - int(lead[m]))
        diff[start] += added[j, m, r] * gpus[m]
        diff[min(end, steps)] -= added[j, m, r] * gpus[m]
    return np.cumsum(diff)[:steps]


@dataclass
class ScheduleControl:
    """Instances by a schedule [interval, model, region] on the preferred types; nothing reacts."""

    prepared: Prepared
    counts: Ints
    loading: NDArray[np.float64]  # GPUs loading per step
    per_tick: int
    _ready: Ints = field(init=False)
    _step: int = 0

    def __post_init__(self) -> None:
        shape = (*self.counts.shape[1:], len(self.prepared.table.gpu_types))
        self._ready = np.zeros(shape, dtype=np.int64)
        self._gpus = self.prepared.table.gpus[np.arange(shape[0]), self.prepared.preferred]  # [model]
        self._price = self.prepared.prices[:, self.prepared.preferred, ON_DEMAND].T  # [model, region]

    @property
    def ready(self) -> Ints:
        """Instances serving now [model, region, gpu type]."""
        return self._ready

    def tick(self, engine: Engine, now: float) -> None:
        """The schedule's count for this interval."""
        j = min(round(now / engine.traffic.step_s) // self.per_tick, len(self.counts) - 1)
        self._ready[:] = 0
        models = np.arange(self.counts.shape[1])
        self._ready[models, :, self.prepared.preferred] = self.counts[j]

    def step(self, engine: Engine, now: float) -> None:
        """Only the clock: loads are accounted by the schedule."""
        self._step = round(now / engine.traffic.step_s)

    def allocated_gpus(self) -> int:
        """GPUs serving plus GPUs loading for the next intervals."""
        serving = self._ready.sum(axis=2) * self._gpus[:, None]
        return int(serving.sum() + self.loading[min(self._step, len(self.loading) - 1)])

    def cost_per_hour(self) -> float:
        """On-demand dollars per hour (loading GPUs at the fleet's mean on-demand GPU price)."""
        serving = self._ready.sum(axis=2) * self._gpus[:, None]
        mean_price = float(self._price.mean())
        loading = float(self.loading[min(self._step, len(self.loading) - 1)])
        return float((serving * self._price).sum()) + loading * mean_price

    def model_requested(self, model_id: str, region: str, now: float) -> None:
        """A schedule does not react."""


def run_schedule(
    prepared: Prepared, options: SimOptions, name: str, counts: Ints, loading: NDArray[np.float64]
) -> RunResult:
    """One baseline through the same engine (its SLO, utilisation and GPU hours)."""
    started = time.perf_counter()
    control = ScheduleControl(prepared, counts, loading, tick_steps(options))
    engine = engine_for(prepared, options, control, local=True)
    accounts = engine.run(control)
    return RunResult(
        name, options, accounts, prepared.traffic.models,
        wall_s=time.perf_counter() - started, queued_at_end=float(engine.queue.sum()),
    )  # fmt: skip


def oracle(prepared: Prepared, options: SimOptions) -> RunResult:
    """The oracle baseline."""
    per_tick = tick_steps(options)
    counts = oracle_counts(prepared, per_tick)
    return run_schedule(prepared, options, "oracle", counts, loading_gpus(prepared, counts, per_tick))


def static_peak(prepared: Prepared, options: SimOptions) -> RunResult:
    """The static baseline: the day's peak, all day."""
    counts = oracle_counts(prepared, tick_steps(options))
    peak = np.broadcast_to(counts.max(axis=0), counts.shape).copy()
    return run_schedule(prepared, options, "static peak", peak, np.zeros(prepared.traffic.steps))
