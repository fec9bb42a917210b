"""The time loop: arrivals, routing, a fluid queue per (model, region), service and latency, every step.

Per step and (model, serving region): the routed arrivals join the queue; the region's instances
serve up to their capacity (instances x the performance model's rate); the rest waits. Served
requests waited (backlog / service rate, averaged over the step) plus the batcher's delay and the
network round trip when served from another region, then their own service time: a mixture over
the sampled lengths on each GPU type, so SLO shares and percentiles need no per-request loop. The
batch B of each instance follows from Little's law (bounded by B_max) and sets the decode step.
A control (the services' policies, or a baseline's schedule) acts every control tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from llmfleet.simulate.held import Held
from llmfleet.simulate.metrics import BINS, Accounts, bin_of, percentile
from llmfleet.simulate.options import REGIONS, LatencyMeasure, SimOptions
from llmfleet.simulate.routing import route
from llmfleet.simulate.service import ServiceTable
from llmfleet.simulate.workload import Traffic
from services.router.domain.batching import BatchLimits

Array = NDArray[np.float64]


class Control(Protocol):
    """What decides the fleet: the services' policies, or a baseline's schedule."""

    @property
    def ready(self) -> NDArray[np.int64]:
        """Instances serving now [model, region, gpu type]."""

    def tick(self, engine: Engine, now: float) -> None:
        """Every control interval, before the step is served."""

    def step(self, engine: Engine, now: float) -> None:
        """Every step, before it is served (loads finishing)."""

    def allocated_gpus(self) -> int:
        """GPUs held now (serving, loading or idle)."""

    def cost_per_hour(self) -> float:
        """Dollars per hour of what is held now."""

    def model_requested(self, model_id: str, region: str, now: float) -> None:
        """The router holds requests for a model no server has (ModelRequested)."""


@dataclass
class Engine:
    """One run's state and its loop."""

    traffic: Traffic
    table: ServiceTable
    options: SimOptions
    limits: BatchLimits
    rtt_s: Array  # [users' region, serving region]
    held: Held
    tick_steps: int
    gpu_price: Array  # [region, gpu type] on-demand $ per GPU hour (what a server's cost_per_hour says)
    local: bool = False  # baselines: users are served in their own region, where it has instances
    accounts: Accounts = field(init=False)

    def __post_init__(self) -> None:
        models, regions = len(self.traffic.models), len(REGIONS)
        hours = max(1, int(np.ceil(self.traffic.steps * self.traffic.step_s / 3600)))
        self.accounts = Accounts(hours, models)
        self.queue = np.zeros((models, regions))
        self.cohort = np.zeros((2, models, regions))  # released cold-start requests: count, waited seconds
        self.shares = np.zeros((models, regions, regions))
        self.present = np.zeros((models, regions), dtype=bool)
        self.window = Window(models, regions)
        self.targets_s = np.array([m.target_ms / 1000 for m in self.traffic.models])
        self.model_ids = [m.model_id for m in self.traffic.models]

    def capacity(self, control: Control) -> Array:
        """Requests per second each (model, region) serves now."""
        return np.asarray((control.ready * self.table.capacity_rps[:, None, :]).sum(axis=2))

    def run(self, control: Control) -> Accounts:
        """Every step of the traffic under `control`."""
        dt = self.traffic.step_s
        for i in range(self.traffic.steps):
            now = i * dt
            self.i = i
            if i % self.tick_steps == 0:
                control.tick(self, now)
                self.reroute(control, force=True)
                self.window.close(self, control, now)
            control.step(self, now)
            self.reroute(control)
            self.serve(control, i, now)
        self.window.close(self, control, self.traffic.steps * dt)
        return self.accounts

    def reroute(self, control: Control, force: bool = False) -> None:
        """New routing shares when the regions with instances change (and every tick)."""
        capacity = self.capacity(control)
        present = capacity > 0
        if not force and (present == self.present).all():
            return
        self.shares = route(self.demand_rate(), capacity, self.instance_cost(control), self.options.routing)
        if self.local:
            home = np.eye(len(REGIONS))[None] * present[:, None, :]  # [model, user, region]
            self.shares = np.where(home.sum(axis=2, keepdims=True) > 0, home, self.shares)
        lost = (~present) & present.any(axis=1, keepdims=True) & (self.queue > 0)
        for m, r in zip(*np.nonzero(lost), strict=True):
            best = int(np.argmax(capacity[m]))  # the queue of a region that lost its instances moves
            self.queue[m, best] += self.queue[m, r]
            self.cohort[:, m, best] += self.cohort[:, m, r]
            self.queue[m, r] = 0.0
            self.cohort[:, m, r] = 0.0
        self.present = present

    def demand_rate(self) -> Array:
        """Requests per second from each users' region: the window so far, or this step's."""
        if self.window.seconds > 0:
            return np.asarray(self.window.arrived / self.window.seconds)
        return np.asarray(self.traffic.arrivals[self.i] / self.traffic.step_s)

    def instance_cost(self, control: Control) -> Array:
        """$/h of one instance of each model in each region (what scoring's cost term sees), ready-weighted."""
        gpus = self.table.gpus[:, None, :] * control.ready
        weighted = (gpus * self.gpu_price[None]).sum(axis=2)
        count = control.ready.sum(axis=2)
        return np.asarray(np.where(count > 0, weighted / np.maximum(count, 1), 0.0))

    def serve(self, control: Control, i: int, now: float) -> None:
        """One step: arrivals, the hold, routing, queue, service, latency and GPU time."""
        dt, hour = self.traffic.step_s, int(now // 3600)
        arrivals = self.traffic.arrivals[i]
        capacity = self.capacity(control)
        known = capacity.sum(axis=1) > 0
        self.release(known, capacity, now)
        for m, u in zip(*np.nonzero((~known)[:, None] & (arrivals > 0)), strict=True):
            self.held.arrive(self.model_ids[m], int(u), float(arrivals[m, u]), now)
        self.held.expire(now)
        routed = arrivals * known[:, None]
        demand = np.einsum("mu,mur->mr", routed, self.shares)
        before = self.queue
        total = before + demand
        served = np.minimum(total, capacity * dt)
        self.queue = total - served
        has = capacity > 0
        rho = np.divide(served, capacity * dt, out=np.zeros_like(served), where=has)
        wait = np.divide((before + self.queue) / 2, capacity, out=np.zeros_like(served), where=has)
        rtt = np.divide(
            np.einsum("mu,mur,ur->mr", routed, self.shares, self.rtt_s),
            demand,
            out=np.zeros_like(demand),
            where=demand > 0,
        )
        per_model = arrivals.sum(axis=1) / dt
        batching = 0.5 * np.minimum(self.limits.max_wait_s, (self.limits.max_size - 1) / np.maximum(per_model, 1e-9))
        self.latency(control, hour, served, rho, wait, rtt + batching[:, None], capacity)
        self.window.add(arrivals, served, capacity * dt, self.held.take_rejected(), self.model_ids, dt)
        acc = self.accounts
        acc.arrived[hour] += arrivals.sum(axis=1)
        gpus = self.table.gpus[:, None, :] * control.ready
        acc.busy_gpu_s[hour] += float((rho[:, :, None] * gpus).sum()) * dt
        acc.instance_gpu_s += gpus.sum(axis=(1, 2)) * dt
        acc.allocated_gpu_s[hour] += control.allocated_gpus() * dt
        acc.dollars[hour] += control.cost_per_hour() * dt / 3600

    def release(self, known: NDArray[np.bool_], capacity: Array, now: float) -> None:
        """Held requests of a model some server now has join that region's queue, with their wait so far."""
        for model_id in [m for m in self.held.hold.held if known[self.model_ids.index(m)]]:
            m = self.model_ids.index(model_id)
            for u, count, arrived in self.held.release(model_id):
                r = int(np.argmax(self.shares[m, u])) if self.shares[m, u].any() else int(np.argmax(capacity[m]))
                self.queue[m, r] += count
                self.cohort[:, m, r] += (count, count * (now - arrived))

    def latency(
        self, control: Control, hour: int, served: Array, rho: Array, wait: Array, fixed: Array, capacity: Array
    ) -> None:
        """Latency mixtures of what each (model, region, GPU type) served this step.

        `wait`: the queue's wait; `fixed`: the round trip and the batcher's delay [model, region].
        """
        t = self.table
        ready = control.ready
        m, r, g = np.nonzero((ready > 0) & (served[:, :, None] > 0))
        if m.size == 0:
            return
        weight = served[m, r] * ready[m, r, g] * t.capacity_rps[m, g] / capacity[m, r]
        extra = np.zeros_like(weight)
        if self.cohort[0].any():  # released cold-start requests are served first, with their wait so far
            first = np.minimum(self.cohort[0], served)
            age = np.divide(self.cohort[1], self.cohort[0], out=np.zeros_like(served), where=self.cohort[0] > 0)
            extra = (first * age / np.maximum(served, 1e-12))[m, r]
            self.cohort[1] -= first * age
            self.cohort[0] -= first
        service = fixed[m, r][:, None] + t.prefill_samples_s[m, g]  # what a request takes with no wait at all
        if self.options.latency is LatencyMeasure.E2E:
            rate = rho[m, r] * t.capacity_rps[m, g]
            batch = self.batch(rate, m, g)
            step = t.step_at(m, g, batch)
            service = (
                service + ((batch - 1).clip(0) * t.mean_prefill_s[m, g])[:, None] + t.step_samples[m] * step[:, None]
            )
        latency = service + (wait[m, r] + extra)[:, None]
        slo_s = self.options.slo_ms / 1000
        self.accounts.latency(hour, m, weight, latency, slo_s, self.targets_s[m])
        self.accounts.misses(m, weight, service, service + extra[:, None], latency, slo_s)
        k = latency.shape[1]
        index = np.repeat((m * len(REGIONS) + r) * BINS, k) + bin_of(latency.ravel())
        self.window.hist += np.bincount(
            index, weights=np.repeat(weight / k, k), minlength=self.window.hist.size
        ).reshape(self.window.hist.shape)

    def batch(self, rate: Array, m: NDArray[np.int64], g: NDArray[np.int64]) -> Array:
        """Sequences in flight per instance by Little's law: B = rate x (B x E[prefill] + E[steps] x step(B))."""
        t = self.table
        b_max = t.b_max[m, g].astype(np.float64)
        batch = np.minimum(b_max, np.maximum(1.0, rate * t.mean_steps[m] * t.step_s[m, g, 1]))
        free = np.maximum(1.0 - rate * t.mean_prefill_s[m, g], 1e-6)
        for _ in range(4):  # the fixed point converges in a few rounds (step(B) is nearly flat in B)
            batch = np.clip(rate * t.mean_steps[m] * t.step_at(m, g, batch) / free, 1.0, b_max)
        return np.asarray(batch)


@dataclass
class Window:
    """What the monitor and the scaler see between two control ticks."""

    models: int
    regions: int
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start the next window."""
        shape = (self.models, self.regions)
        self.arrived, self.served, self.capacity = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.rejected = np.zeros(self.models)
        self.hist = np.zeros((self.models, self.regions, BINS))
        self.seconds = 0.0

    def add(
        self, arrived: Array, served: Array, capacity: Array, rejected: dict[str, float], ids: list[str], dt: float
    ) -> None:
        """One step's figures."""
        self.arrived += arrived
        self.served += served
        self.capacity += capacity
        for model_id, count in rejected.items():
            self.rejected[ids.index(model_id)] += count
        self.seconds += dt

    def close(self, engine: Engine, control: Control, now: float) -> None:
        """Fold the window into the hour's histogram and the time series; start the next."""
        acc = engine.accounts
        if not self.seconds:
            return  # the first tick: nothing seen yet
        hour = min(int(max(now - 1e-9, 0) // 3600), acc.hours - 1)
        acc.hist[hour] += self.hist.sum(axis=1)
        acc.rejected[hour] += self.rejected
        acc.record("time_h", now / 3600)
        acc.record("demand_rps", self.arrived.sum() / max(self.seconds, engine.traffic.step_s))
        acc.record("capacity_rps", float(engine.capacity(control).sum()))
        acc.record("allocated_gpus", control.allocated_gpus())
        acc.record("queued", float(engine.queue.sum()))
        acc.record("p95_s", percentile(self.hist.sum(axis=(0, 1)), 0.95))
        self.reset()
