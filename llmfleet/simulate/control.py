"""The services' policies driving the simulated fleet, every control tick, as the live services feed them.

Each tick (the scaler's evaluation interval): the monitor judges the window's utilisation, queue,
p95 and error rate and raises signals; spot servers may be reclaimed; the scaler evaluates (with the
signals, placements and utilisation it would have read) and the allocator carries out its actions.
Every step, loads that finished confirm their actions. Every hour the cost service's rules run on
the fleet (their recommendations are counted, not applied).
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from llmfleet.simulate.allocator import Allocator
from llmfleet.simulate.engine import Engine
from llmfleet.simulate.fleet import CLASSES, Fleet, SimServer
from llmfleet.simulate.loop import (
    lost_in_flight,
    preferred_equivalents,
    replan_region,
    service_samples_s,
    stop_taking_batches_at,
)
from llmfleet.simulate.metrics import BINS, EDGES
from llmfleet.simulate.monitor import Monitor
from llmfleet.simulate.options import REGIONS, Placement
from llmfleet.simulate.scaler import Key, Scaler
from services.allocator.domain.fleet import FleetConfig
from services.allocator.domain.scaling import Server
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
    # The fleet loop (issue 15): reclaim notices acted on, MILP re-plans.
    notice_s: float = 0.0
    placement: Placement = Placement.GREEDY
    replan_interval_s: float = 3600.0
    milp_time_limit_s: float = 1.0
    milp_fleet: FleetConfig | None = None  # the models as the MILP sees them (None: the fleet's)
    milp_gpu_types: dict[str, tuple[str, ...]] = field(default_factory=dict)  # per model: types it may use
    # (at, seq, "stop" | "gone", server, what it held, reclaimed at): a heap of reclaim notices' events
    _events: list[tuple[float, int, str, str, dict[str, int], float]] = field(default_factory=list)
    _seq: int = 0
    figures: dict[str, float] = field(default_factory=dict)  # sums that are not counts (lost requests, seconds)

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
        if self.placement is Placement.MILP and now % self.replan_interval_s == 0:
            self.replan()
        for entry in self.allocator.reclaim(self.rng, self.reclaim_probability, notice=self.notice_s > 0):
            if self.notice_s > 0:
                self.notice(entry, now)
                continue
            self.count_lost(entry.server, entry.server.placements, None)
            for model_id in entry.server.placements:
                self.scaler.released(entry.server.server_id, model_id, entry.server.region)
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

    def replan(self) -> None:
        """The MILP re-plan: each region's instances placed afresh; new instances go to its types first."""
        started = time.perf_counter()
        held = self.fleet.ready + self.fleet.loading
        types: dict[tuple[str, str], str] = {}
        capacity = self.allocator.table.capacity_rps
        gpu_types = self.fleet.gpu_types
        preferred = [gpu_types.index(self.fleet.config.models[m].preferred_gpu) for m in self.model_ids]
        for r, region in enumerate(REGIONS):
            demanded = preferred_equivalents(held[:, r, :], capacity, preferred, self.model_ids)
            config = self.milp_fleet or self.fleet.config
            plan = replan_region(
                demanded, region, config, self.fleet.pools, self.milp_time_limit_s, self.milp_gpu_types
            )
            types |= plan.types
            self.counts[f"replan_{plan.method}"] += 1
            self.figures["replan_cost_per_hour"] = self.figures.get("replan_cost_per_hour", 0.0) + plan.cost_per_hour
        moved = sum(
            1 for (model_id, _), gpu_type in types.items()
            if gpu_type != self.fleet.config.models[model_id].preferred_gpu
        )  # fmt: skip
        self.counts["replan_types_off_preferred"] = moved
        self.allocator.placement_types = types
        self.figures["replan_s"] = self.figures.get("replan_s", 0.0) + time.perf_counter() - started

    def drain_s(self, m: int, g: int) -> float:
        """The longest sampled request of model m on an instance of GPU type g (at its batch bound)."""
        t = self.allocator.table
        b = int(max(t.b_max[m, g], 1))
        return float(service_samples_s(t.prefill_samples_s[m, g], t.step_samples[m], float(t.step_s[m, g, b])).max())

    def count_lost(self, server: Server, held: Mapping[str, int], drain_s: float | None) -> None:
        """Requests in flight on a reclaimed server that cannot finish (see `loop.lost_in_flight`)."""
        t, r, g = self.allocator.table, REGIONS.index(server.region), self.fleet.gpu_types.index(server.gpu_type)
        for model_id, count in held.items():
            m = self.model_ids.index(model_id)
            seen = self.utilization.size and np.isfinite(self.utilization[m, r])
            busy = float(self.utilization[m, r]) if seen else 1.0
            b = int(max(t.b_max[m, g], 1))
            samples = service_samples_s(t.prefill_samples_s[m, g], t.step_samples[m], float(t.step_s[m, g, b]))
            lost = lost_in_flight(count, busy, b, samples, drain_s)
            self.figures["requests_lost_to_reclaims"] = self.figures.get("requests_lost_to_reclaims", 0.0) + lost

    def notice(self, entry: SimServer, now: float) -> None:
        """A reclaim notice: replacements start now; the server serves until they do, drains, then goes."""
        server = entry.server
        reclaim_at = now + self.notice_s
        ready: float | None = now
        drain = 0.0
        g = self.fleet.gpu_types.index(server.gpu_type)
        for model_id, count in server.placements.items():
            done = self.allocator.replace_capacity(model_id, server.region, count, now)
            if done is None:
                self.counts["replacements_failed"] += 1
            ready = None if done is None or ready is None else max(ready, done)
            drain = max(drain, self.drain_s(self.model_ids.index(model_id), g))
        stop_at = stop_taking_batches_at(now, reclaim_at, ready, drain)
        self.figures["notice_overlap_s"] = self.figures.get("notice_overlap_s", 0.0) + (stop_at - now)
        held = dict(server.placements)
        self._seq += 1
        heapq.heappush(self._events, (stop_at, self._seq, "stop", server.server_id, held, reclaim_at))
        heapq.heappush(self._events, (reclaim_at, self._seq, "gone", server.server_id, held, reclaim_at))

    def reclaim_events(self, now: float) -> None:
        """Reclaimed servers that stop taking batches (their in-flight work drains), or go, by now."""
        while self._events and self._events[0][0] <= now + 1e-9:
            at, _, kind, server_id, held, reclaim_at = heapq.heappop(self._events)
            if kind == "stop":  # the drain window runs from the planned stop to the reclaim
                server = self.fleet.servers[server_id].server
                self.fleet.stop_serving(server_id)
                self.count_lost(server, held, max(reclaim_at - at, 0.0))
            else:
                entry = self.fleet.release(server_id)
                for model_id in held:
                    self.scaler.released(server_id, model_id, entry.server.region)

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
        """Reclaim notices running out; loads that finished: their instances serve, their actions are confirmed."""
        self.reclaim_events(now)
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
