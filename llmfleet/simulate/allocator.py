"""The allocator acting on scaling actions in the simulated fleet, with its own `plan_scaling`.

As `services.allocator.use_cases.planning` does: the target (0 for an unload), the region's live
servers and the pools go to `plan_scaling`; a plan that fails changes nothing and the action
fails. Steps become real at once, except loads: a started server or a model loaded onto a running
one serves after its cold start (the performance model's weights load plus engine start), and the
action stays pending until then. The sim's allocator may run a server per GPU of the fleet (the
live default of 4 servers is the local emulation's limit).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from llmfleet.simulate.fleet import Fleet, SimServer
from llmfleet.simulate.options import REGIONS
from llmfleet.simulate.pricing import Purchase
from llmfleet.simulate.service import ServiceTable
from services.allocator.domain.fleet import ModelRequirement
from services.allocator.domain.scaling import (
    AddInstances,
    RemoveInstances,
    Server,
    StartServer,
    instances_of,
    plan_scaling,
)
from services.scaler.domain.planner import PlannedAction
from shared.events import ActionKind

Load = tuple[str, str]  # (server id, model id)


@dataclass
class Allocator:
    """Carries out actions on the fleet and counts what it did."""

    fleet: Fleet
    table: ServiceTable
    purchase: Purchase
    max_gpus_per_server: int
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    max_servers: int | None = None  # the live allocator's cap over all regions (the demo's 6); None: none
    # The local provisioner starts one server at a time (the demo's starts come a start apart); the
    # seed's cloud starts them in parallel.
    serial_starts: bool = False
    # The last re-plan's GPU type per (model, region) (MILP placement); absent: the preferred type.
    placement_types: dict[tuple[str, str], str] = field(default_factory=dict)
    _next_id: int = 0
    _starts_free_at: float = float("-inf")

    def _new_id(self, region: str) -> str:
        self._next_id += 1
        return f"sim-{region}-{self._next_id:06d}"

    def _server_limit(self, servers: list[Server]) -> int:
        """`plan_scaling`'s limit for these servers: the cap less the servers elsewhere (as planning.py)."""
        if self.max_servers is None:
            return len(servers) + 100_000
        return self.max_servers - (len(self.fleet.servers) - len(servers))

    def _ready_at(self, now: float, cold: float) -> float:
        """When a server started now serves: after its cold start, behind the one starting (serial starts)."""
        if not self.serial_starts:
            return now + cold
        self._starts_free_at = max(now, self._starts_free_at) + cold
        return self._starts_free_at

    def requirement(self, model_id: str, region: str) -> ModelRequirement:
        """The model as the allocator places it in `region`: preferred type first, or the last re-plan's type."""
        requirement = self.fleet.config.models[model_id]
        chosen = self.placement_types.get((model_id, region))
        return requirement if chosen is None else replace(requirement, preferred_gpu=chosen)

    def act(self, action: PlannedAction, now: float) -> set[Load] | None:
        """Carry out the action; the loads it waits for, or None when it failed (AllocationFailed)."""
        target = 0 if action.kind is ActionKind.UNLOAD else action.target
        self.counts[f"action_{action.kind.value}"] += 1
        done = self._carry_out(action.model_id, action.region, lambda current: target, now)
        return None if done is None else done[0]

    def replace_capacity(self, model_id: str, region: str, instances: int, now: float) -> float | None:
        """Start `instances` more of the model in `region` (a reclaimed server's); when they all serve, or None."""
        self.counts["replacements"] += 1
        done = self._carry_out(model_id, region, lambda current: current + instances, now)
        return None if done is None else done[1]

    def _carry_out(
        self, model_id: str, region: str, target: Callable[[int], int], now: float
    ) -> tuple[set[Load], float] | None:
        """`plan_scaling` to the target (a function of the current count), its steps applied; (loads, ready at)."""
        fleet = self.fleet
        requirement = self.requirement(model_id, region)
        servers = fleet.candidates(region, model_id)
        plan = plan_scaling(
            requirement, region, target(instances_of(model_id, region, servers)), servers, fleet.config, fleet.pools,
            new_server_id=lambda: self._new_id(region), max_servers=self._server_limit(servers),
            max_gpus_per_server=self.max_gpus_per_server,
        )  # fmt: skip
        if plan.failure is not None:
            self.counts["allocation_failed"] += 1
            if len(self.failures) < 20:
                self.failures.append(plan.failure)
            return None
        cold = float(self.table.cold_start_s[fleet.models[model_id]])
        waits: set[Load] = set()
        ready = now
        for step in plan.steps:
            if isinstance(step, StartServer):
                r, g = REGIONS.index(step.region), fleet.gpu_types.index(step.gpu_type)
                pricing = self.purchase.choose(r, g, step.gpu_count, fleet.gpus_by_class)
                server = Server(
                    step.server_id, step.region, step.gpu_type, step.gpu_count, {step.model_id: step.instances}
                )
                at = self._ready_at(now, cold)
                fleet.start(server, pricing, now, at)
                ready = max(ready, at)
                waits.add((step.server_id, step.model_id))
                self.counts["servers_started"] += 1
                self.counts["cold_starts"] += 1
            elif isinstance(step, AddInstances):
                fleet.add(step.server_id, step.model_id, step.instances, now + cold if step.load else None)
                if step.load:
                    ready = max(ready, now + cold)
                    waits.add((step.server_id, step.model_id))
                    self.counts["cold_starts"] += 1
            elif isinstance(step, RemoveInstances):
                fleet.remove(step.server_id, step.model_id, step.instances)
                if step.stop:
                    fleet.stop(step.server_id)
                    self.counts["servers_stopped"] += 1
        return waits, ready

    def reclaim(self, rng: np.random.Generator, probability: float, notice: bool = False) -> list[SimServer]:
        """Spot servers the cloud takes back this round (each as it was: its placements kept).

        Without `notice` they go at once; with it they are only detached (the caller drains them).
        """
        spot = [
            sid for sid, s in self.fleet.servers.items() if s.pricing.value == "spot" and sid not in self.fleet.draining
        ]
        if not spot or probability <= 0:
            return []
        gone = [sid for sid, hit in zip(spot, rng.random(len(spot)) < probability, strict=True) if hit]
        result = []
        for server_id in gone:
            result.append(self.fleet.detach(server_id) if notice else self.fleet.stop(server_id))
            self.counts["spot_reclaims"] += 1
        return result
