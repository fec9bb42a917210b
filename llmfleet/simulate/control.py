"""The services' policies driving the simulated fleet, every control tick, as the live services feed them.

Each tick (the scaler's evaluation interval): the monitor judges the window's utilisation, queue,
p95 and error rate and raises signals; spot servers may be reclaimed; the scaler evaluates (with the
signals, placements and utilisation it would have read) and the allocator carries out its actions.
Every step, loads that finished confirm their actions. Every hour the cost service's rules run on
the fleet (their recommendations are counted, not applied).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from llmfleet.simulate.allocator import Allocator
from llmfleet.simulate.engine import Engine
from llmfleet.simulate.fleet import CLASSES, Fleet
from llmfleet.simulate.metrics import BINS, EDGES
from llmfleet.simulate.monitor import Monitor
from llmfleet.simulate.options import REGIONS
from llmfleet.simulate.scaler import Key, Scaler
from services.cost.domain.fleet import Server as CostServer
from services.cost.domain.pricing import Catalogue
from services.cost.domain.rules import Thresholds, pools, rule_recommendations
from services.monitor.domain.rules import Metric
from services.scaler.domain.planner import PlannedAction
from shared.events import ActionKind

Array = NDArray[np.float64]
VALUES = np.concatenate([[EDGES[0]], np.sqrt(EDGES[:-1] * EDGES[1:]), [EDGES[-1]]])


def window_p95_ms(hist: Array) -> Array:
    """p95 of each histogram row [..., BINS] in ms (NaN where empty), vectorised."""
    total = hist.sum(axis=-1)
    below = (np.cumsum(hist, axis=-1) < 0.95 * total[..., None]).sum(axis=-1)
    return np.where(total > 0, VALUES[np.minimum(below, BINS - 1)] * 1000, np.nan)


@dataclass
class PolicyControl:
    """Monitor, scaler, allocator and cost rules over one simulated fleet."""

    fleet: Fleet
    allocator: Allocator
    scaler: Scaler
    monitor: Monitor
    catalogue: Catalogue
    thresholds: Thresholds
    start: datetime
    reclaim_probability: float
    rng: np.random.Generator
    model_ids: list[str]
    counts: Counter[str] = field(default_factory=Counter)
    last_request: dict[Key, datetime] = field(default_factory=dict)
    preloads: dict[Key, float] = field(default_factory=dict)  # preloaded, waiting to see traffic
    utilization: Array = field(default_factory=lambda: np.zeros(0))  # the last window's [model, region]
    gpu_hours: dict[str, float] = field(default_factory=dict)  # by pricing class

    @property
    def ready(self) -> NDArray[np.int64]:
        """Instances serving now [model, region, gpu type]."""
        return self.fleet.ready

    def at(self, now: float) -> datetime:
        """Wall time of a simulated second."""
        return self.start + timedelta(seconds=now)

    def tick(self, engine: Engine, now: float) -> None:
        """Monitor, reclaims, scaler and allocator; the cost rules on the hour."""
        at = self.at(now)
        tick_h = engine.tick_steps * engine.traffic.step_s / 3600
        for c, pricing in enumerate(CLASSES):  # GPU hours by how they are paid, sampled each tick
            held = float(self.fleet.gpus_by_class[:, :, c].sum()) * tick_h
            self.gpu_hours[pricing.value] = self.gpu_hours.get(pricing.value, 0.0) + held
        placed = self.fleet.ready.sum(axis=2)
        utilization = self.observe(engine, placed, at) if engine.window.seconds else np.full(placed.shape, np.nan)
        self.utilization = utilization
        for server_id, region, models in self.allocator.reclaim(self.rng, self.reclaim_probability):
            for model_id in models:
                self.scaler.released(server_id, model_id, region)
        placements, utilizations = {}, {}
        for m, r in zip(*np.nonzero(placed > 0), strict=True):
            key = (self.model_ids[m], REGIONS[r])
            placements[key] = int(placed[m, r])
            if not np.isnan(utilization[m, r]):
                utilizations[key] = float(utilization[m, r])
        snapshot = self.scaler.snapshot(at, placements, utilizations, self.last_request)
        for action in self.scaler.evaluate(snapshot, at):
            self.execute(action, now)
        if now % 3600 == 0:
            self.cost_cycle()

    def observe(self, engine: Engine, placed: NDArray[np.int64], at: datetime) -> Array:
        """The monitor's round on the window: alerts, signals to the scaler; the utilisation it saw."""
        w = engine.window
        for m, u in zip(*np.nonzero(w.arrived > 0), strict=True):
            self.last_request[(self.model_ids[m], REGIONS[u])] = at
        for key, since in list(self.preloads.items()):
            m, r = self.model_ids.index(key[0]), REGIONS.index(key[1])
            if w.served[m, r] > 0 or self.at(since) < at - timedelta(hours=1):
                self.counts["preload_hits" if w.served[m, r] > 0 else "preload_misses"] += 1
                del self.preloads[key]
        serving = placed > 0
        utilization = np.where(
            serving, np.divide(w.served, w.capacity, out=np.zeros_like(w.served), where=w.capacity > 0), np.nan
        )
        queue = np.where(serving, engine.queue / np.maximum(placed, 1), np.nan)
        p95 = window_p95_ms(w.hist)
        arrived = w.arrived.sum(axis=1)
        errors = np.divide(w.rejected, arrived, out=np.full_like(arrived, np.nan), where=arrived > 0)
        keys = [(mid, region) for mid in self.model_ids for region in REGIONS]
        values = {
            Metric.GPU_UTILIZATION: utilization,
            Metric.QUEUE_DEPTH: queue,
            Metric.LATENCY_P95_MS: p95,
            Metric.ERROR_RATE: np.repeat(errors[:, None], len(REGIONS), axis=1),
        }
        for metric, value in values.items():
            flat = value.ravel()
            self.monitor.judge(metric, keys, flat, at)
            for key, kind in self.monitor.signals(metric, keys, flat, at):
                self.scaler.signal(key, kind, at)
                self.counts[f"signal_{kind.value}"] += 1
        return np.asarray(utilization)

    def execute(self, action: PlannedAction, now: float) -> None:
        """The allocator carries out an action; the scaler records it as pending, confirmed or failed."""
        waits = self.allocator.act(action, now)
        self.scaler.requested(action, self.at(now), waits or set())
        self.counts[f"rule_{action.rule}"] += 1
        if waits is not None and action.kind is ActionKind.PRELOAD:
            self.counts["preloads"] += 1
            self.preloads[(action.model_id, action.region)] = now

    def step(self, engine: Engine, now: float) -> None:
        """Loads that finished: their instances serve, their actions are confirmed."""
        for server_id, model_id in self.fleet.finish_loads(now):
            region = self.fleet.servers[server_id].server.region
            self.scaler.loaded(server_id, model_id, region, self.at(now))

    def model_requested(self, model_id: str, region: str, now: float) -> None:
        """The router's ModelRequested: the scaler's cold-start preload, if none is pending."""
        m = self.model_ids.index(model_id)
        action = self.scaler.cold_start(model_id, region, int(self.fleet.ready[m, REGIONS.index(region)].sum()))
        if action is not None:
            self.execute(action, now)

    def allocated_gpus(self) -> int:
        """GPUs held by the fleet's servers."""
        return self.fleet.allocated_gpus()

    def cost_per_hour(self) -> float:
        """What the held GPUs (and idle reserved ones) cost per hour."""
        return self.allocator.purchase.per_hour(self.fleet.gpus_by_class)

    def cost_servers(self) -> list[CostServer]:
        """The fleet as the cost service sees it: servers, their models, the utilisation the monitor saw."""
        result = []
        for sid, s in self.fleet.servers.items():
            server, r = s.server, REGIONS.index(s.server.region)
            busy = (
                [self.utilization[self.model_ids.index(m), r] for m in server.placements]
                if self.utilization.size
                else []
            )
            known = [float(u) for u in busy if not np.isnan(u)]
            utilization = sum(known) / len(known) if known else None
            result.append(
                CostServer(
                    sid,
                    server.region,
                    server.gpu_type,
                    server.gpu_count,
                    s.pricing,
                    0.0,
                    tuple(server.placements),
                    utilization,
                )
            )
        return result

    def cost_cycle(self) -> None:
        """The cost service's rule recommendations on the fleet (counted)."""
        for rec in rule_recommendations(pools(self.cost_servers()), self.catalogue, self.thresholds):
            self.counts[f"recommendation_{rec.kind}"] += 1
