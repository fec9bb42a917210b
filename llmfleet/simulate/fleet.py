"""The simulated fleet: the seed's pools scaled to 10,000+ GPUs, and the servers the allocator runs on them.

Servers are the allocator's (`services.allocator.domain.scaling.Server`): GPUs of one pool, and the
instances of each model on them. Instances being loaded serve only once their cold start is over.
Counts per (model, region, GPU type) are kept as arrays for the engine.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from llmfleet.simulate.catalogue import SimModel
from llmfleet.simulate.options import REGIONS
from services.allocator.domain.allocation import PoolKey
from services.allocator.domain.fleet import FleetConfig, Pool
from services.allocator.domain.scaling import Server
from services.cost.domain.pricing import PricingClass

CLASSES: tuple[PricingClass, ...] = (PricingClass.ON_DEMAND, PricingClass.SPOT, PricingClass.RESERVED)


def scaled_fleet(base: FleetConfig, gpus: int, models: list[SimModel]) -> FleetConfig:
    """The seed's pools in the three regions scaled to `gpus` in all (each keeps its free/held-back split)."""
    chosen = [p for p in base.pools if p.region in REGIONS]
    factor = gpus / sum(p.total for p in chosen)
    pools = []
    for p in chosen:
        total = round(p.total * factor)
        available = round(p.available * factor)
        pools.append(Pool(p.region, p.gpu_type, total, available, total - available, p.pricing_class))
    extra = gpus - sum(p.total for p in pools)  # rounding: the largest pool's held-back GPUs absorb it
    i = max(range(len(pools)), key=lambda j: pools[j].total)
    pools[i] = replace(pools[i], total=pools[i].total + extra, reserved=pools[i].reserved + extra)
    return replace(base, pools=tuple(pools), models={m.model_id: m.requirement for m in models})


@dataclass
class SimServer:
    """A server, how it is paid for, and when each model's instances on it serve."""

    server: Server
    pricing: PricingClass
    started_at: float
    ready_at: dict[str, float] = field(default_factory=dict)


@dataclass
class Fleet:
    """Live servers, pools, and instance counts [model, region, gpu type] (ready and loading)."""

    config: FleetConfig
    models: dict[str, int]
    gpu_types: tuple[str, ...]
    instance_gpus: NDArray[np.int64]  # [model, gpu type] GPUs one instance takes (whole GPUs)
    pools: dict[PoolKey, Pool] = field(init=False)
    servers: dict[str, SimServer] = field(default_factory=dict)
    by_region: dict[str, dict[str, Server]] = field(default_factory=dict)
    _loads: list[tuple[float, str, str]] = field(default_factory=list)  # (ready at, server, model) heap

    def __post_init__(self) -> None:
        self.pools = {(p.region, p.gpu_type): p for p in self.config.pools}
        shape = (len(self.models), len(REGIONS), len(self.gpu_types))
        self.ready: NDArray[np.int64] = np.zeros(shape, dtype=np.int64)
        self.loading: NDArray[np.int64] = np.zeros(shape, dtype=np.int64)
        self.gpus_by_class: NDArray[np.int64] = np.zeros((len(REGIONS), len(self.gpu_types), len(CLASSES)), np.int64)
        self.by_region = {r: {} for r in REGIONS}
        self.free: dict[str, int] = {}  # GPUs of each server no instance takes
        self.draining: set[str] = set()  # servers under a reclaim notice: no planning sees them

    def _key(self, model_id: str, server: Server) -> tuple[int, int, int]:
        return self.models[model_id], REGIONS.index(server.region), self.gpu_types.index(server.gpu_type)

    def _store(self, entry: SimServer, server: Server) -> None:
        entry.server = server
        self.by_region[server.region][server.server_id] = server
        g = self.gpu_types.index(server.gpu_type)
        used = sum(n * int(self.instance_gpus[self.models[m], g]) for m, n in server.placements.items())
        self.free[server.server_id] = server.gpu_count - used

    def candidates(self, region: str, model_id: str) -> list[Server]:
        """The region's servers `plan_scaling` can use for the model: those holding it or with free GPUs.

        The others have no room for an instance of any model (`room_for` is 0), so leaving them out
        changes no plan and spares `room_for` per full server (it dominated when the pools ran dry).
        """
        return [s for s in self.by_region[region].values() if model_id in s.placements or self.free[s.server_id] > 0]

    def start(self, server: Server, pricing: PricingClass, now: float, ready_at: float) -> None:
        """A new server, its GPUs taken from the pool, its one model loading until `ready_at`."""
        key = (server.region, server.gpu_type)
        self.pools[key] = self.pools[key].take(server.gpu_count)
        entry = SimServer(server, pricing, now)
        self.servers[server.server_id] = entry
        self._store(entry, server)
        self.gpus_by_class[
            REGIONS.index(server.region), self.gpu_types.index(server.gpu_type), CLASSES.index(pricing)
        ] += server.gpu_count
        for model_id, count in server.placements.items():
            self._loading(entry, model_id, count, ready_at)

    def _loading(self, entry: SimServer, model_id: str, count: int, ready_at: float) -> None:
        self.loading[self._key(model_id, entry.server)] += count
        entry.ready_at[model_id] = ready_at
        heapq.heappush(self._loads, (ready_at, entry.server.server_id, model_id))

    def add(self, server_id: str, model_id: str, count: int, ready_at: float | None) -> None:
        """More instances on a running server: at once when the model is loaded there, else after loading."""
        entry = self.servers[server_id]
        placements = dict(entry.server.placements)
        placements[model_id] = placements.get(model_id, 0) + count
        self._store(entry, replace(entry.server, placements=placements))
        if model_id in entry.ready_at:  # still loading there: the new instances come with the rest
            self.loading[self._key(model_id, entry.server)] += count
        elif ready_at is None:
            self.ready[self._key(model_id, entry.server)] += count
        else:
            self._loading(entry, model_id, count, ready_at)

    def remove(self, server_id: str, model_id: str, count: int) -> None:
        """Fewer instances of a model on a server (serving ones first; the last may still be loading)."""
        entry = self.servers[server_id]
        key = self._key(model_id, entry.server)
        loading = model_id in entry.ready_at
        if loading:
            self.loading[key] -= count
        else:
            self.ready[key] -= count
        placements = dict(entry.server.placements)
        placements[model_id] -= count
        if placements[model_id] <= 0:
            del placements[model_id]
            entry.ready_at.pop(model_id, None)
        self._store(entry, replace(entry.server, placements=placements))

    def stop(self, server_id: str) -> SimServer:
        """Release a server (emptied, or reclaimed): its instances go and its GPUs return to the pool."""
        entry = self.servers[server_id]
        held = dict(entry.server.placements)
        for model_id, count in held.items():
            self.remove(server_id, model_id, count)
        del self.servers[server_id]
        server = replace(entry.server, placements=held)  # what it held, for the caller
        entry.server = server
        del self.by_region[server.region][server_id]
        del self.free[server_id]
        key = (server.region, server.gpu_type)
        self.pools[key] = self.pools[key].give_back(server.gpu_count)
        g = self.gpu_types.index(server.gpu_type)
        self.gpus_by_class[REGIONS.index(server.region), g, CLASSES.index(entry.pricing)] -= server.gpu_count
        return entry

    def detach(self, server_id: str) -> SimServer:
        """A server under a reclaim notice: still serving and paid for, but no plan may use or change it."""
        entry = self.servers[server_id]
        region = entry.server.region
        del self.by_region[region][server_id]
        del self.free[server_id]
        self.draining.add(server_id)
        return entry

    def stop_serving(self, server_id: str) -> dict[str, int]:
        """A detached server takes no more batches: its instances stop counting; what it held (model -> n)."""
        entry = self.servers[server_id]
        held = dict(entry.server.placements)
        for model_id, count in held.items():
            key = self._key(model_id, entry.server)
            if model_id in entry.ready_at:  # still loading: the load never lands
                self.loading[key] -= count
                del entry.ready_at[model_id]
            else:
                self.ready[key] -= count
        entry.server = replace(entry.server, placements={})
        return held

    def release(self, server_id: str) -> SimServer:
        """A detached server goes (the reclaim): its GPUs return to the pool and stop being paid for."""
        entry = self.servers.pop(server_id)
        if entry.server.placements:
            self.stop_serving_entry(entry)
        self.draining.discard(server_id)
        server = entry.server
        key = (server.region, server.gpu_type)
        self.pools[key] = self.pools[key].give_back(server.gpu_count)
        g = self.gpu_types.index(server.gpu_type)
        self.gpus_by_class[REGIONS.index(server.region), g, CLASSES.index(entry.pricing)] -= server.gpu_count
        return entry

    def stop_serving_entry(self, entry: SimServer) -> None:
        """`stop_serving` for an entry already out of `servers`."""
        self.servers[entry.server.server_id] = entry
        self.stop_serving(entry.server.server_id)
        del self.servers[entry.server.server_id]

    def finish_loads(self, now: float) -> list[tuple[str, str]]:
        """Instances whose cold start is over serve from now; (server, model) of each."""
        done = []
        while self._loads and self._loads[0][0] <= now:
            ready_at, server_id, model_id = heapq.heappop(self._loads)
            entry = self.servers.get(server_id)
            if entry is None or entry.ready_at.get(model_id) != ready_at:
                continue  # stopped, unloaded or reloaded since
            del entry.ready_at[model_id]
            key = self._key(model_id, entry.server)
            count = entry.server.placements.get(model_id, 0)
            self.loading[key] -= count
            self.ready[key] += count
            done.append((server_id, model_id))
        return done

    def allocated_gpus(self) -> int:
        """GPUs held by live servers (serving, loading or idle)."""
        return int(self.gpus_by_class.sum())
