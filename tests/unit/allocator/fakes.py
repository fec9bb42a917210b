"""In-memory fakes of the allocator's adapters: the repository and unit of work, a provisioner, a relay.

`FakeUnitOfWork` works on a copy of its state and keeps the copy only when the transaction ends
cleanly, so a use case that raises midway leaves nothing behind, as with Postgres. Events queued
with `announce` count as published once committed (`uow.events`).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.allocator.adapters.control import PRIORITY
from services.allocator.adapters.inventory import LIVE, InsufficientGpus
from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.adapters.provisioner import ProvisioningError, ServerEndpoint
from services.allocator.adapters.repository import AllocatorRepository
from services.allocator.domain.allocation import PoolKey, gpu_ids_for
from services.allocator.domain.capacity import TAKE_ORDER, CapacityPlan, GpuOnRecord
from services.allocator.domain.fleet import FleetConfig, ModelRequirement, Pool, PricingClass
from services.allocator.domain.planner import DeploymentPlan, Emulation, best_plan
from services.allocator.domain.reconciliation import (
    ActionOnRecord,
    PlacementOnRecord,
    PoolAccount,
    RegisteredServer,
    ServerObserved,
    ServerOnRecord,
    latest_attempts,
    replacement_prefix,
)
from services.allocator.domain.records import ActionRecord, PendingSteps, PlacementRecord, ServerRecord
from services.allocator.domain.replanning import RunningServer
from services.allocator.domain.scaling import Server, StartServer
from shared.events import AlertChanged, CapacityChangeRequested, Event, GpuPrice, ScalingActionRequested

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeState:
    """Everything the allocator's tables hold, as plain dicts."""

    pools: dict[PoolKey, Pool] = field(default_factory=dict)
    gpus: dict[str, dict[str, Any]] = field(default_factory=dict)  # gpu_id -> region, gpu_type, state, server_id, class
    capacity_changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> the audit row
    prices: dict[PoolKey, dict[PricingClass, float]] = field(default_factory=dict)
    requirements: dict[str, ModelRequirement] = field(default_factory=dict)
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    placements: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    plans: dict[tuple[str, str], DeploymentPlan] = field(default_factory=dict)
    inbox: set[tuple[str, uuid.UUID]] = field(default_factory=set)
    outbox: list[tuple[Event, str]] = field(default_factory=list)
    alerts: list[AlertChanged] = field(default_factory=list)
    registered: dict[str, RegisteredServer] = field(default_factory=dict)  # servers others announced
    clock: datetime = EPOCH  # the database's clock: tests move it with `advance`
    created: int = 0  # actions recorded so far: orders actions recorded at one clock reading

    def advance(self, seconds: float) -> None:
        """Let time pass on the database's clock."""
        self.clock += timedelta(seconds=seconds)


def seeded(fleet: FleetConfig) -> FakeState:
    """The state `inventory.seed` writes for the fleet: pools, GPU ids, prices, requirements."""
    state = FakeState(requirements=dict(fleet.models))
    for pool in fleet.pools:
        key = (pool.region, pool.gpu_type)
        state.pools[key] = pool
        ids = gpu_ids_for(pool)
        held = set(ids[len(ids) - pool.reserved :]) if pool.reserved else set()
        for n, gpu_id in enumerate(ids):
            status = "free" if n < pool.available else "reserved" if gpu_id in held else "allocated"
            state.gpus[gpu_id] = {
                "region": pool.region, "gpu_type": pool.gpu_type, "state": status, "server_id": None,
                "pricing_class": pool.pricing_class.value,
            }  # fmt: skip
        state.prices[key] = {c: fleet.price(pool.region, pool.gpu_type, c) for c in PricingClass}
    return state


class FakeRepository:
    """`AllocatorRepository` over a `FakeState`."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        seen = (consumer, event_id) in self.state.inbox
        self.state.inbox.add((consumer, event_id))
        return not seen

    async def record_action(self, event: ScalingActionRequested) -> bool:
        if event.action_id in self.state.actions:
            return False
        self.state.created += 1
        self.state.actions[event.action_id] = {
            "model_id": event.model_id, "region": event.region, "kind": event.kind.value,
            "target_instances": event.target_instances, "state": "in_progress", "reason": None,
            "priority": PRIORITY[event.priority], "attempts": 0, "owner": None, "lease_until": None,
            "created_at": self.state.clock, "order": self.state.created,
        }  # fmt: skip
        return True

    async def action_state(self, action_id: str) -> str:
        return str(self.state.actions[action_id]["state"])

    async def action(self, action_id: str) -> ActionRecord:
        row = self.state.actions[action_id]
        return ActionRecord(action_id, row["model_id"], row["region"])

    async def finish_action(self, action_id: str, state: str, reason: str | None = None) -> None:
        if self.state.actions[action_id]["state"] == "in_progress":
            self.state.actions[action_id] |= {"state": state, "reason": reason}

    async def fail_action(self, action_id: str, reason: str) -> None:
        self.state.actions[action_id] |= {"state": "failed", "reason": reason}

    async def lock_region(self, region: str) -> dict[PoolKey, Pool]:
        return {key: pool for key, pool in sorted(self.state.pools.items()) if key[0] == region}

    async def requirements(self) -> dict[str, ModelRequirement]:
        return dict(self.state.requirements)

    async def live_servers(self, prefix: str) -> tuple[list[Server], int]:
        rows = {
            sid: row for sid, row in self.state.servers.items() if row["state"] in LIVE and sid.startswith(f"{prefix}-")
        }
        counts: dict[str, dict[str, int]] = {sid: {} for sid in rows}
        for (sid, model_id), p in self.state.placements.items():
            if sid in rows and p["state"] != "unloading":
                counts[sid][model_id] = p["instances"]
        servers = [
            Server(sid, row["region"], row["gpu_type"], row["gpu_count"], counts[sid])
            for sid, row in rows.items()
            if row["state"] not in ("stopping", "draining")
        ]
        return servers, sum(1 for row in rows.values() if row["state"] != "draining")

    async def price_per_gpu(self, fleet: FleetConfig, pool: Pool) -> float:
        prices = self.state.prices.get((pool.region, pool.gpu_type))
        return (
            fleet.price(pool.region, pool.gpu_type, pool.pricing_class)
            if prices is None
            else prices[pool.pricing_class]
        )

    async def take_gpus(self, region: str, gpu_type: str, count: int, server_id: str) -> list[str]:
        pool = self.state.pools[(region, gpu_type)]
        if pool.available < count:
            raise InsufficientGpus(f"fewer than {count} free {gpu_type} GPUs in {region}")
        self.state.pools[(region, gpu_type)] = replace(pool, available=pool.available - count)
        free = sorted(
            (gid for gid, g in self.state.gpus.items()
             if (g["region"], g["gpu_type"], g["state"]) == (region, gpu_type, "free")),
            key=lambda gid: (TAKE_ORDER.index(self.state.gpus[gid].get("pricing_class", "on_demand")), gid),
        )[:count]  # fmt: skip
        for gpu_id in free:
            self.state.gpus[gpu_id] |= {"state": "allocated", "server_id": server_id}
        return free

    async def return_gpus(self, server_ids: Iterable[str]) -> int:
        wanted = set(server_ids)
        back = [g for g in self.state.gpus.values() if g["server_id"] in wanted]
        for g in back:
            g |= {"state": "free", "server_id": None}
            pool = self.state.pools[(g["region"], g["gpu_type"])]
            self.state.pools[(g["region"], g["gpu_type"])] = replace(pool, available=pool.available + 1)
        return len(back)

    async def add_server(self, step: StartServer, cost_per_hour: float, pricing_class: str, action_id: str) -> None:
        assert step.server_id not in self.state.servers, "server ids are primary keys"
        self.state.servers[step.server_id] = {
            "region": step.region, "gpu_type": step.gpu_type, "gpu_count": step.gpu_count, "state": "starting",
            "cost_per_hour": cost_per_hour, "pricing_class": pricing_class, "action_id": action_id,
            "endpoint": None, "metrics_url": None, "reason": None,
        }  # fmt: skip

    async def mark_server(self, server_id: str, state: str, **values: str | None) -> None:
        self.state.servers[server_id] |= {"state": state, **values}

    async def add_placement(
        self, server_id: str, model_id: str, triton_model: str, instances: int, action_id: str
    ) -> None:
        assert (server_id, model_id) not in self.state.placements, "placements are keyed by server and model"
        self.state.placements[(server_id, model_id)] = {
            "triton_model": triton_model, "instances": instances, "state": "loading", "action_id": action_id,
        }  # fmt: skip

    async def resize_placement(self, server_id: str, model_id: str, change: int) -> int:
        row = self.state.placements[(server_id, model_id)]
        row["instances"] += change
        assert row["instances"] >= 0, "CHECK instances_not_negative"
        return int(row["instances"])

    async def mark_placement(self, server_id: str, model_id: str, state: str, action_id: str | None = None) -> None:
        row = self.state.placements[(server_id, model_id)]
        row |= {"state": state} if action_id is None else {"state": state, "action_id": action_id}

    async def forget_placements(self, server_id: str, model_id: str | None = None) -> None:
        for table in (self.state.placements, self.state.plans):
            for key in [k for k in table if k[0] == server_id and model_id in (None, k[1])]:
                del table[key]

    async def record_plan(self, fleet: FleetConfig, server_id: str, requirement: ModelRequirement) -> None:
        row = self.state.servers[server_id]
        if row["gpu_type"] not in fleet.gpus:
            return
        target = requirement.latency_target_ms if requirement.latency_target_ms is not None else float("inf")
        gpu, per_gpu = fleet.gpus[row["gpu_type"]], row["cost_per_hour"] / row["gpu_count"]
        plan = best_plan(requirement, gpu, per_gpu, target, row["gpu_count"])
        if plan is not None:
            self.state.plans[(server_id, requirement.model_id)] = plan

    async def pending(self, action_id: str) -> PendingSteps:
        servers = {sid: row for sid, row in self.state.servers.items() if row["action_id"] == action_id}
        placements = [(k, p) for k, p in self.state.placements.items() if p["action_id"] == action_id]

        def server(sid: str) -> ServerRecord:
            row = self.state.servers[sid]
            fields = ("region", "gpu_type", "gpu_count", "cost_per_hour", "pricing_class")
            return ServerRecord(sid, *(row[f] for f in fields))

        def placed(key: tuple[str, str], p: dict[str, Any]) -> PlacementRecord:
            host = self.state.servers[key[0]]
            return PlacementRecord(key[0], key[1], p["triton_model"], p["instances"], host["endpoint"], host["state"])

        return PendingSteps(
            starting=[server(sid) for sid, row in servers.items() if row["state"] == "starting"],
            stopping=[server(sid) for sid, row in servers.items() if row["state"] == "stopping"],
            loading=[placed(k, p) for k, p in placements if p["state"] == "loading"],
            unloading=[placed(k, p) for k, p in placements if p["state"] == "unloading"],
        )

    async def record_price(self, price: GpuPrice) -> None:
        self.state.prices[(price.region, price.gpu_type)] = {
            PricingClass.ON_DEMAND: price.on_demand_per_hour,
            PricingClass.SPOT: price.spot_per_hour,
            PricingClass.RESERVED: price.reserved_per_hour,
        }

    async def announce(self, event: Event, key: str) -> None:
        self.state.outbox.append((event, key))

    async def raise_alert(self, alert: AlertChanged) -> None:
        self.state.alerts.append(alert)

    async def now(self) -> datetime:
        return self.state.clock

    def _leased(self, row: dict[str, Any]) -> bool:
        return row["owner"] is not None and row["lease_until"] >= self.state.clock

    async def claim_action(self, owner: str, lease_s: float, max_attempts: int) -> ActionRecord | None:
        free = [
            (row["priority"], row["created_at"], row["order"], action_id)
            for action_id, row in self.state.actions.items()
            if row["state"] == "in_progress" and not self._leased(row) and row["attempts"] < max_attempts
        ]
        if not free:
            return None
        action_id = min(free)[-1]
        row = self.state.actions[action_id]
        row |= {"owner": owner, "lease_until": self.state.clock + timedelta(seconds=lease_s)}
        row["attempts"] += 1
        return ActionRecord(action_id, row["model_id"], row["region"])

    async def renew_lease(self, action_id: str, owner: str, lease_s: float) -> bool:
        row = self.state.actions[action_id]
        if row["owner"] != owner or row["state"] != "in_progress":
            return False
        row["lease_until"] = self.state.clock + timedelta(seconds=lease_s)
        return True

    async def release_action(self, action_id: str, owner: str) -> None:
        row = self.state.actions[action_id]
        if row["owner"] == owner:
            row |= {"owner": None, "lease_until": None}

    async def actions_in_progress(self) -> list[ActionOnRecord]:
        return [
            ActionOnRecord(
                action_id, row["model_id"], row["region"], row["created_at"], row["attempts"], self._leased(row)
            )
            for action_id, row in self.state.actions.items()
            if row["state"] == "in_progress"
        ]

    async def servers_on_record(self, prefix: str) -> list[ServerOnRecord]:
        in_progress = {a for a, row in self.state.actions.items() if row["state"] == "in_progress"}
        recorded = []
        for sid, row in self.state.servers.items():
            if row["state"] not in LIVE or not sid.startswith(f"{prefix}-"):
                continue
            placed = [(m, p) for (s, m), p in self.state.placements.items() if s == sid]
            busy = (row["action_id"] in in_progress and row["state"] != "running") or any(
                p["action_id"] in in_progress and p["state"] != "ready" for _, p in placed
            )
            replacements = set(
                latest_attempts({
                    a: str(row["state"]) for a, row in self.state.actions.items()
                    if a.startswith(replacement_prefix(sid))
                }).values()
            )  # fmt: skip
            recorded.append(
                ServerOnRecord(
                    sid,
                    row["region"],
                    row["state"],
                    busy,
                    row["endpoint"],
                    row.get("unhealthy_since"),
                    tuple(PlacementOnRecord(m, p["triton_model"], p["state"], p["instances"]) for m, p in placed),
                    row.get("reclaim_at"),
                    replacements == {"done"} or (row["state"] == "draining" and not placed),
                    "failed" in replacements and "in_progress" not in replacements,
                )
            )
        return recorded

    async def mark_draining(self, server_id: str, reclaim_at: datetime) -> bool:
        row = self.state.servers.get(server_id)
        if row is None or row["state"] != "running":
            return False
        row |= {"state": "draining", "reclaim_at": reclaim_at}
        return True

    async def replacement_attempts(self, base_id: str) -> dict[str, str]:
        return {
            a: str(row["state"]) for a, row in self.state.actions.items() if a == base_id or a.startswith(f"{base_id}~")
        }

    async def spot_servers(self, prefix: str) -> list[str]:
        return sorted(
            sid
            for sid, row in self.state.servers.items()
            if row["state"] == "running" and row["pricing_class"] == "spot" and sid.startswith(f"{prefix}-")
        )

    async def running_servers(self, prefix: str) -> list[RunningServer]:
        running = []
        for sid, row in sorted(self.state.servers.items()):
            if row["state"] != "running" or not sid.startswith(f"{prefix}-"):
                continue
            placed = {
                m: p["instances"] for (s, m), p in self.state.placements.items() if s == sid and p["state"] == "ready"
            }
            running.append(
                RunningServer(sid, row["region"], row["gpu_type"], row["gpu_count"], row["cost_per_hour"], placed)
            )
        return running

    async def mark_moving(self, server_id: str) -> bool:
        row = self.state.servers.get(server_id)
        if row is None or row["state"] != "running":
            return False
        row |= {"state": "draining", "reclaim_at": None}
        return True

    async def undrain(self, server_id: str, reason: str) -> None:
        row = self.state.servers[server_id]
        if row["state"] == "draining" and row.get("reclaim_at") is None:
            row |= {"state": "running", "reason": reason}

    async def pools(self) -> dict[PoolKey, Pool]:
        return dict(sorted(self.state.pools.items()))

    async def mark_unhealthy(self, server_id: str, since: bool) -> None:
        row = self.state.servers[server_id]
        if row["state"] == "running":
            row["unhealthy_since"] = self.state.clock if since else None

    async def pool_accounts(self) -> list[PoolAccount]:
        accounts = []
        for (region, gpu_type), pool in sorted(self.state.pools.items()):
            rows: dict[str, int] = {}
            for g in self.state.gpus.values():
                if (g["region"], g["gpu_type"]) == (region, gpu_type):
                    rows[g["state"]] = rows.get(g["state"], 0) + 1
            accounts.append(PoolAccount(region, gpu_type, pool.total, pool.available, pool.reserved, rows))
        return accounts

    async def register_server(self, server_id: str, endpoint: str, region: str) -> None:
        self.state.registered[server_id] = RegisteredServer(server_id, endpoint, region, None)

    async def forget_registered(self, server_id: str) -> None:
        self.state.registered.pop(server_id, None)

    async def registered_servers(self, limit: int) -> list[RegisteredServer]:
        return list(self.state.registered.values())[:limit]

    async def mark_unanswered(self, server_ids: list[str], since: bool) -> None:
        for sid in server_ids:
            self.state.registered[sid] = replace(
                self.state.registered[sid], unanswered_since=self.state.clock if since else None
            )

    async def lock_pool(self, region: str, gpu_type: str) -> tuple[Pool | None, list[GpuOnRecord], set[str]]:
        pool = self.state.pools.get((region, gpu_type))
        if pool is None:
            return None, [], set()
        gpus = [
            GpuOnRecord(gid, g["state"], g.get("pricing_class", "on_demand"), g["server_id"])
            for gid, g in sorted(self.state.gpus.items())
            if (g["region"], g["gpu_type"]) == (region, gpu_type)
        ]
        live = {
            g.server_id
            for g in gpus
            if g.server_id is not None and self.state.servers.get(g.server_id, {}).get("state") in LIVE
        }
        return pool, gpus, live

    async def apply_capacity_plan(
        self, region: str, gpu_type: str, plan: CapacityPlan, new_ids: dict[str, list[str]]
    ) -> None:
        for gpu_id, target in plan.convert.items():
            self.state.gpus[gpu_id]["pricing_class"] = target
        for gpu_id in plan.release:
            assert self.state.gpus[gpu_id]["state"] == "free", "only free GPUs are released"
            del self.state.gpus[gpu_id]
        added = 0
        for c, ids in new_ids.items():
            for gpu_id in ids:
                assert gpu_id not in self.state.gpus, "gpu ids are primary keys"
                self.state.gpus[gpu_id] = {
                    "region": region, "gpu_type": gpu_type, "state": "free", "server_id": None, "pricing_class": c,
                }  # fmt: skip
                added += 1
        change = added - len(plan.release)
        pool = self.state.pools[(region, gpu_type)]
        self.state.pools[(region, gpu_type)] = replace(
            pool, total=pool.total + change, available=pool.available + change
        )

    async def capacity_change_on_record(self, request_id: str) -> bool:
        return request_id in self.state.capacity_changes

    async def record_capacity_change(
        self, event: CapacityChangeRequested, result: str, reason: str | None, applied: dict[str, Any]
    ) -> bool:
        if event.request_id in self.state.capacity_changes:
            return False
        self.state.capacity_changes[event.request_id] = {
            "recommendation_id": event.recommendation_id, "region": event.region, "gpu_type": event.gpu_type,
            "requested": dict(event.changes), "applied": applied or None, "result": result, "reason": reason,
            "commitment_months": event.commitment_months, "created_at": self.state.clock,
        }  # fmt: skip
        return True

    async def gpu_classes(self, gpu_ids: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for gpu_id in gpu_ids:
            c = self.state.gpus[gpu_id].get("pricing_class", "on_demand")
            counts[c] = counts.get(c, 0) + 1
        return counts

    async def reprice_server(self, server_id: str, pricing_class: str, cost_per_hour: float) -> None:
        self.state.servers[server_id] |= {"pricing_class": pricing_class, "cost_per_hour": cost_per_hour}

    async def stray_gpu_holders(self) -> list[str]:
        live = {sid for sid, row in self.state.servers.items() if row["state"] in LIVE}
        return sorted(
            {
                g["server_id"]
                for g in self.state.gpus.values()
                if g["state"] == "allocated" and g["server_id"] is not None and g["server_id"] not in live
            }
        )


class FakeUnitOfWork:
    """`UnitOfWork` whose transactions work on a copy and keep it only on a clean exit."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.commits = 0
        self.metric_refreshes = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AllocatorRepository]:
        working = copy.deepcopy(self.state)
        yield FakeRepository(working)
        self.state = working  # only reached without an exception: a commit
        self.commits += 1

    async def refresh_metrics(self, metrics: AllocatorMetrics) -> None:
        self.metric_refreshes += 1

    @property
    def events(self) -> list[Event]:
        """The committed allocation events, in order."""
        return [event for event, _ in self.state.outbox]


class FakeProvisioner:
    """Servers that start at once; models load when the repository has them."""

    def __init__(self, repository: Iterable[str] = ("echo",), broken_gpu_types: Iterable[str] = ()) -> None:
        self.repository = set(repository)
        self.broken_gpu_types = set(broken_gpu_types)
        self.running: dict[str, ServerEndpoint] = {}
        self.loaded: dict[str, set[str]] = {}  # endpoint -> ready models
        self.stopped: list[str] = []
        self.emulations: dict[str, Emulation | None] = {}  # server id -> what it was told to emulate
        self.refuse_stop: set[str] = set()  # server ids whose stop fails (the launcher errs)
        self.start_raises: Exception | None = None  # what start_server raises instead of starting
        self.starts: dict[str, int] = {}  # server id -> processes started for it

    def crash(self, server_id: str) -> None:
        """The server's process dies (SIGKILL): gone from what is running, the records do not know."""
        endpoint = self.running.pop(server_id)
        self.loaded.pop(endpoint.endpoint, None)

    async def start_server(
        self, server_id: str, region: str, gpu_type: str, gpu_count: int, emulation: Emulation | None = None
    ) -> ServerEndpoint:
        self.emulations[server_id] = emulation
        if gpu_type in self.broken_gpu_types:
            raise ProvisioningError(f"no local emulation profile for GPU type {gpu_type}")
        if self.start_raises is not None:
            raise self.start_raises
        if server_id not in self.running:
            self.starts[server_id] = self.starts.get(server_id, 0) + 1
        endpoint = self.running.setdefault(server_id, ServerEndpoint(f"{server_id}:8000", f"http://{server_id}:8002"))
        self.loaded.setdefault(endpoint.endpoint, set())
        return endpoint

    async def load_model(self, endpoint: str, triton_model: str) -> None:
        self._answering(endpoint)
        if triton_model not in self.repository:
            raise ProvisioningError(f"model {triton_model} is not in the repository of {endpoint}")
        self.loaded[endpoint].add(triton_model)

    def _answering(self, endpoint: str) -> None:
        if endpoint not in self.loaded:  # as a real server that is gone: the connection is refused
            raise ProvisioningError(f"{endpoint}: connection refused")

    async def model_ready(self, endpoint: str, triton_model: str) -> bool:
        return triton_model in self.loaded.get(endpoint, set())

    async def unload_model(self, endpoint: str, triton_model: str) -> None:
        self._answering(endpoint)
        self.loaded[endpoint].discard(triton_model)

    async def stop_server(self, server_id: str) -> None:
        if server_id in self.refuse_stop:
            raise ProvisioningError(f"stop {server_id} failed: the launcher exited with 1")
        endpoint = self.running.pop(server_id, None)
        if endpoint is not None:
            self.loaded.pop(endpoint.endpoint, None)
            self.stopped.append(server_id)

    async def observe(self, prefix: str) -> dict[str, ServerObserved]:
        return {
            sid: ServerObserved(sid, alive=True, ready=True, loaded=frozenset(self.loaded.get(endpoint.endpoint, ())))
            for sid, endpoint in self.running.items()
            if sid.startswith(f"{prefix}-")
        }


class FakeRelay:
    """Counts how often the use cases asked for a publish."""

    def __init__(self) -> None:
        self.rounds = 0
        self.notified = 0

    async def publish_pending(self, limit: int = 500) -> int:
        self.rounds += 1
        return 0

    def notify(self) -> None:
        self.notified += 1

    async def run(self, poll_interval_s: float = 1.0) -> None:
        return None
