"""The allocator's repository: what its use cases read and write, as a Protocol and in Postgres.

The use cases see only `UnitOfWork` (one transaction per `transaction()`) and the
`AllocatorRepository` it yields; `SqlUnitOfWork` implements them with SQLAlchemy, the unit tests
with an in-memory fake. Events are queued in the outbox through the same repository, so they go
out only when the transaction commits. The pool and GPU queries live in `inventory`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.allocator.adapters import capacity, control, inventory
from services.allocator.adapters.inventory import InsufficientGpus, seed
from services.allocator.adapters.metrics import AllocatorMetrics
from services.allocator.adapters.orm import gpu_price, inbox, outbox, placement, scaling_action, server
from services.allocator.domain.allocation import PoolKey
from services.allocator.domain.capacity import CapacityPlan, GpuOnRecord
from services.allocator.domain.fleet import FleetConfig, ModelRequirement, Pool
from services.allocator.domain.reconciliation import ActionOnRecord, PoolAccount, RegisteredServer, ServerOnRecord
from services.allocator.domain.records import ActionRecord, PendingSteps, PlacementRecord, ServerRecord
from services.allocator.domain.replanning import RunningServer
from services.allocator.domain.scaling import Server, StartServer
from shared import unit_of_work as shared_uow
from shared.events import (
    ALERTS,
    ALLOCATIONS,
    AlertChanged,
    CapacityChangeRequested,
    Event,
    GpuPrice,
    ScalingActionRequested,
)
from shared.inbox import first_delivery
from shared.outbox import add_to_outbox
from shared.telemetry import current_traceparent

__all__ = ["AllocatorRepository", "InsufficientGpus", "SqlAllocatorRepository", "SqlUnitOfWork", "UnitOfWork", "seed"]


class AllocatorRepository(Protocol):
    """The allocator's state, inside one transaction."""

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when this consumer has already applied it."""

    async def record_action(self, event: ScalingActionRequested) -> bool:
        """Record the action as in progress; False when its id is already on record."""

    async def action_state(self, action_id: str) -> str:
        """in_progress, done or failed."""

    async def action(self, action_id: str) -> ActionRecord:
        """The recorded action."""

    async def finish_action(self, action_id: str, state: str, reason: str | None = None) -> None:
        """Set the action's final state, unless it is no longer in progress."""

    async def fail_action(self, action_id: str, reason: str) -> None:
        """Mark the action failed with the reason (the latest failure's reason wins)."""

    async def lock_region(self, region: str) -> dict[PoolKey, Pool]:
        """The region's pools, locked until the transaction ends (planning is serialised)."""

    async def requirements(self) -> dict[str, ModelRequirement]:
        """Every model's requirements as stored."""

    async def live_servers(self, prefix: str) -> tuple[list[Server], int]:
        """Servers of this deployment that can take instances, and how many run in all."""

    async def price_per_gpu(self, fleet: FleetConfig, pool: Pool) -> float:
        """$/h of one GPU of the pool under its pricing class."""

    async def take_gpus(self, region: str, gpu_type: str, count: int, server_id: str) -> list[str]:
        """Allocate GPUs of the pool to the server; InsufficientGpus rather than over-allocate."""

    async def return_gpus(self, server_ids: Iterable[str]) -> int:
        """Give the servers' GPUs back to their pools; how many came back."""

    async def add_server(self, step: StartServer, cost_per_hour: float, pricing_class: str, action_id: str) -> None:
        """Record a server to start."""

    async def mark_server(self, server_id: str, state: str, **values: str | None) -> None:
        """Set a server's state and the given columns (endpoint, metrics_url, reason, action_id)."""

    async def add_placement(
        self, server_id: str, model_id: str, triton_model: str, instances: int, action_id: str
    ) -> None:
        """Record a model to load on a server."""

    async def resize_placement(self, server_id: str, model_id: str, change: int) -> int:
        """Add (or take off) instances of a loaded model; the new count."""

    async def mark_placement(self, server_id: str, model_id: str, state: str, action_id: str | None = None) -> None:
        """Set a placement's state (and the action that set it)."""

    async def forget_placements(self, server_id: str, model_id: str | None = None) -> None:
        """Delete the server's placements (of one model, or all) and their deployment plans."""

    async def record_plan(self, fleet: FleetConfig, server_id: str, requirement: ModelRequirement) -> None:
        """Keep the best deployment plan for the model on the server's GPUs."""

    async def pending(self, action_id: str) -> PendingSteps:
        """The action's servers and placements still to make real."""

    async def record_price(self, price: GpuPrice) -> None:
        """Store (or replace) a pool's published prices."""

    async def now(self) -> datetime:
        """The database's clock."""

    async def claim_action(self, owner: str, lease_s: float, max_attempts: int) -> ActionRecord | None:
        """Take the next action to carry out (priority, then age) under a lease; None when there is none."""

    async def renew_lease(self, action_id: str, owner: str, lease_s: float) -> bool:
        """Extend the owner's lease; False when the action is no longer the owner's."""

    async def release_action(self, action_id: str, owner: str) -> None:
        """Give up the owner's lease."""

    async def actions_in_progress(self) -> list[ActionOnRecord]:
        """Every action in progress and whether a lease on it still runs."""

    async def servers_on_record(self, prefix: str) -> list[ServerOnRecord]:
        """This deployment's live servers with placements, and whether an action in progress owns them."""

    async def mark_unhealthy(self, server_id: str, since: bool) -> None:
        """Start (since=True) or clear a running server's unhealthy clock."""

    async def pool_accounts(self) -> list[PoolAccount]:
        """Each pool's counters and its GPU rows by state."""

    async def stray_gpu_holders(self) -> list[str]:
        """Server ids holding GPUs that are not live."""

    async def announce(self, event: Event, key: str) -> None:
        """Queue an allocation event; it goes out only if the transaction commits."""

    async def raise_alert(self, alert: AlertChanged) -> None:
        """Queue an alert (fired or resolved) on the alerts topic, with the transaction."""

    async def register_server(self, server_id: str, endpoint: str, region: str) -> None:
        """Watch a server someone else announced on the allocations topic."""

    async def mark_draining(self, server_id: str, reclaim_at: datetime) -> bool:
        """Put a running server under a spot reclaim notice; False when it is not running."""

    async def replacement_attempts(self, base_id: str) -> dict[str, str]:
        """Every attempt of one replacement action: action id -> state."""

    async def spot_servers(self, prefix: str) -> list[str]:
        """This deployment's running spot servers."""

    async def running_servers(self, prefix: str) -> list[RunningServer]:
        """This deployment's running servers with their ready placements."""

    async def mark_moving(self, server_id: str) -> bool:
        """Put a running server whose instances move elsewhere in `draining`; False when it is not running."""

    async def undrain(self, server_id: str, reason: str) -> None:
        """A server whose move failed is running again."""

    async def pools(self) -> dict[PoolKey, Pool]:
        """Every pool as committed (not locked)."""

    async def forget_registered(self, server_id: str) -> None:
        """Stop watching a registered server."""

    async def registered_servers(self, limit: int) -> list[RegisteredServer]:
        """Registered servers, the oldest unanswered first."""

    async def mark_unanswered(self, server_ids: list[str], since: bool) -> None:
        """Start (since=True) or clear registered servers' unanswered clocks."""

    async def lock_pool(self, region: str, gpu_type: str) -> tuple[Pool | None, list[GpuOnRecord], set[str]]:
        """The pool locked (with planning's lock), its GPUs, and the live servers holding them."""

    async def apply_capacity_plan(
        self, region: str, gpu_type: str, plan: CapacityPlan, new_ids: dict[str, list[str]]
    ) -> None:
        """Convert, release and add the plan's GPUs; the pool's counters follow its rows."""

    async def capacity_change_on_record(self, request_id: str) -> bool:
        """True when the capacity change request was carried out or refused before."""

    async def record_capacity_change(
        self, event: CapacityChangeRequested, result: str, reason: str | None, applied: dict[str, Any]
    ) -> bool:
        """Audit the request once; False when its request id is on record already."""

    async def gpu_classes(self, gpu_ids: list[str]) -> dict[str, int]:
        """How many of the GPUs are of each pricing class."""

    async def reprice_server(self, server_id: str, pricing_class: str, cost_per_hour: float) -> None:
        """A running server's new pricing class and $/h."""


class UnitOfWork(shared_uow.UnitOfWork[AllocatorRepository], Protocol):
    """Opens transactions over the allocator's repository (shared.unit_of_work), and refreshes metrics."""

    async def refresh_metrics(self, metrics: AllocatorMetrics) -> None:
        """Set the metrics' gauges from the committed state."""


class SqlAllocatorRepository:
    """`AllocatorRepository` over one SQLAlchemy session (the caller owns its transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when this consumer has already applied it."""
        return await first_delivery(self.session, inbox, consumer, event_id)

    async def record_action(self, event: ScalingActionRequested) -> bool:
        """Record the action as in progress; False when its id is already on record."""
        values: dict[str, object] = {"action_id": event.action_id, "model_id": event.model_id}
        values |= {"region": event.region, "kind": event.kind.value, "target_instances": event.target_instances}
        values |= {"state": "in_progress", "priority": control.PRIORITY.get(event.priority, 1)}
        values |= {"traceparent": current_traceparent()}  # the consumer's span: the worker continues its trace
        recorded = await self.session.execute(
            insert(scaling_action).values(values).on_conflict_do_nothing().returning(scaling_action.c.action_id)
        )
        return recorded.first() is not None

    async def action_state(self, action_id: str) -> str:
        """in_progress, done or failed."""
        query = select(scaling_action.c.state).where(scaling_action.c.action_id == action_id)
        return str((await self.session.execute(query)).scalar_one())

    async def action(self, action_id: str) -> ActionRecord:
        """The recorded action."""
        query = select(scaling_action).where(scaling_action.c.action_id == action_id)
        row = (await self.session.execute(query)).one()
        return ActionRecord(row.action_id, row.model_id, row.region)

    async def finish_action(self, action_id: str, state: str, reason: str | None = None) -> None:
        """Set the action's final state, unless it is no longer in progress."""
        where = and_(scaling_action.c.action_id == action_id, scaling_action.c.state == "in_progress")
        await self.session.execute(
            scaling_action.update().where(where).values(state=state, reason=reason, updated_at=func.now())
        )

    async def fail_action(self, action_id: str, reason: str) -> None:
        """Mark the action failed with the reason (the latest failure's reason wins)."""
        await self.session.execute(
            scaling_action.update()
            .where(scaling_action.c.action_id == action_id)
            .values(state="failed", reason=reason, updated_at=func.now())
        )

    async def lock_region(self, region: str) -> dict[PoolKey, Pool]:
        """The region's pools, locked until the transaction ends (planning is serialised)."""
        return await inventory.lock_region(self.session, region)

    async def requirements(self) -> dict[str, ModelRequirement]:
        """Every model's requirements as stored."""
        return await inventory.requirements(self.session)

    async def live_servers(self, prefix: str) -> tuple[list[Server], int]:
        """Servers of this deployment that can take instances, and how many run in all."""
        return await inventory.live_servers(self.session, prefix)

    async def price_per_gpu(self, fleet: FleetConfig, pool: Pool) -> float:
        """$/h of one GPU of the pool under its pricing class."""
        return await inventory.price_per_gpu(self.session, fleet, pool)

    async def take_gpus(self, region: str, gpu_type: str, count: int, server_id: str) -> list[str]:
        """Allocate GPUs of the pool to the server; InsufficientGpus rather than over-allocate."""
        return await inventory.take_gpus(self.session, region, gpu_type, count, server_id)

    async def return_gpus(self, server_ids: Iterable[str]) -> int:
        """Give the servers' GPUs back to their pools; how many came back."""
        return await inventory.return_gpus(self.session, server_ids)

    async def add_server(self, step: StartServer, cost_per_hour: float, pricing_class: str, action_id: str) -> None:
        """Record a server to start."""
        await self.session.execute(
            server.insert().values(
                server_id=step.server_id, region=step.region, gpu_type=step.gpu_type, gpu_count=step.gpu_count,
                state="starting", cost_per_hour=cost_per_hour, pricing_class=pricing_class, action_id=action_id,
            )
        )  # fmt: skip

    async def mark_server(self, server_id: str, state: str, **values: str | None) -> None:
        """Set a server's state and the given columns (endpoint, metrics_url, reason, action_id)."""
        await self.session.execute(
            server.update().where(server.c.server_id == server_id).values(state=state, updated_at=func.now(), **values)
        )

    async def add_placement(
        self, server_id: str, model_id: str, triton_model: str, instances: int, action_id: str
    ) -> None:
        """Record a model to load on a server."""
        await self.session.execute(
            placement.insert().values(
                server_id=server_id, model_id=model_id, triton_model=triton_model, instances=instances,
                state="loading", action_id=action_id,
            )
        )  # fmt: skip

    async def resize_placement(self, server_id: str, model_id: str, change: int) -> int:
        """Add (or take off) instances of a loaded model; the new count."""
        where = (placement.c.server_id == server_id) & (placement.c.model_id == model_id)
        now = await self.session.execute(
            placement.update()
            .where(where)
            .values(instances=placement.c.instances + change)
            .returning(placement.c.instances)
        )
        return int(now.scalar_one())

    async def mark_placement(self, server_id: str, model_id: str, state: str, action_id: str | None = None) -> None:
        """Set a placement's state (and the action that set it)."""
        where = (placement.c.server_id == server_id) & (placement.c.model_id == model_id)
        values = {"state": state} if action_id is None else {"state": state, "action_id": action_id}
        await self.session.execute(placement.update().where(where).values(values))

    async def forget_placements(self, server_id: str, model_id: str | None = None) -> None:
        """Delete the server's placements (of one model, or all) and their deployment plans."""
        await inventory.forget_placements(self.session, server_id, model_id)

    async def record_plan(self, fleet: FleetConfig, server_id: str, requirement: ModelRequirement) -> None:
        """Keep the best deployment plan for the model on the server's GPUs."""
        await inventory.record_plan(self.session, fleet, server_id, requirement)

    async def pending(self, action_id: str) -> PendingSteps:
        """The action's servers and placements still to make real."""
        rows = (await self.session.execute(select(server).where(server.c.action_id == action_id))).all()
        servers = [
            (r.state, ServerRecord(r.server_id, r.region, r.gpu_type, r.gpu_count, r.cost_per_hour, r.pricing_class))
            for r in rows
        ]
        query = (
            select(placement, server.c.endpoint, server.c.state.label("server_state"))
            .join(server, server.c.server_id == placement.c.server_id)
            .where(placement.c.action_id == action_id)
        )
        placements = [
            (p.state, PlacementRecord(p.server_id, p.model_id, p.triton_model, p.instances, p.endpoint, p.server_state))
            for p in (await self.session.execute(query)).all()
        ]
        return PendingSteps(
            starting=[s for state, s in servers if state == "starting"],
            stopping=[s for state, s in servers if state == "stopping"],
            loading=[p for state, p in placements if state == "loading"],
            unloading=[p for state, p in placements if state == "unloading"],
        )

    async def record_price(self, price: GpuPrice) -> None:
        """Store (or replace) a pool's published prices."""
        values = {"on_demand_per_hour": price.on_demand_per_hour, "spot_per_hour": price.spot_per_hour}
        values |= {"reserved_per_hour": price.reserved_per_hour}
        await self.session.execute(
            insert(gpu_price)
            .values(region=price.region, gpu_type=price.gpu_type, **values)
            .on_conflict_do_update(index_elements=["region", "gpu_type"], set_=values)
        )

    async def now(self) -> datetime:
        """The database's clock."""
        return await control.now(self.session)

    async def claim_action(self, owner: str, lease_s: float, max_attempts: int) -> ActionRecord | None:
        """Take the next action to carry out (priority, then age) under a lease; None when there is none."""
        return await control.claim_action(self.session, owner, lease_s, max_attempts)

    async def renew_lease(self, action_id: str, owner: str, lease_s: float) -> bool:
        """Extend the owner's lease; False when the action is no longer the owner's."""
        return await control.renew_lease(self.session, action_id, owner, lease_s)

    async def release_action(self, action_id: str, owner: str) -> None:
        """Give up the owner's lease."""
        await control.release_action(self.session, action_id, owner)

    async def actions_in_progress(self) -> list[ActionOnRecord]:
        """Every action in progress and whether a lease on it still runs."""
        return await control.actions_in_progress(self.session)

    async def servers_on_record(self, prefix: str) -> list[ServerOnRecord]:
        """This deployment's live servers with placements, and whether an action in progress owns them."""
        return await control.servers_on_record(self.session, prefix)

    async def mark_unhealthy(self, server_id: str, since: bool) -> None:
        """Start (since=True) or clear a running server's unhealthy clock."""
        await control.mark_unhealthy(self.session, server_id, since)

    async def pool_accounts(self) -> list[PoolAccount]:
        """Each pool's counters and its GPU rows by state."""
        return await control.pool_accounts(self.session)

    async def stray_gpu_holders(self) -> list[str]:
        """Server ids holding GPUs that are not live."""
        return await control.stray_gpu_holders(self.session)

    async def announce(self, event: Event, key: str) -> None:
        """Queue an allocation event; it goes out only if the transaction commits."""
        await add_to_outbox(self.session, outbox, ALLOCATIONS, event, key=key)

    async def raise_alert(self, alert: AlertChanged) -> None:
        """Queue an alert (fired or resolved) on the alerts topic, with the transaction."""
        await add_to_outbox(self.session, outbox, ALERTS, alert, key=alert.alert_id)

    async def register_server(self, server_id: str, endpoint: str, region: str) -> None:
        """Watch a server someone else announced on the allocations topic."""
        await control.register_server(self.session, server_id, endpoint, region)

    async def mark_draining(self, server_id: str, reclaim_at: datetime) -> bool:
        """Put a running server under a spot reclaim notice; False when it is not running."""
        return await control.mark_draining(self.session, server_id, reclaim_at)

    async def replacement_attempts(self, base_id: str) -> dict[str, str]:
        """Every attempt of one replacement action: action id -> state."""
        return await control.replacement_attempts(self.session, base_id)

    async def spot_servers(self, prefix: str) -> list[str]:
        """This deployment's running spot servers."""
        return await control.spot_servers(self.session, prefix)

    async def running_servers(self, prefix: str) -> list[RunningServer]:
        """This deployment's running servers with their ready placements."""
        return await control.running_servers(self.session, prefix)

    async def mark_moving(self, server_id: str) -> bool:
        """Put a running server whose instances move elsewhere in `draining`; False when it is not running."""
        return await control.mark_moving(self.session, server_id)

    async def undrain(self, server_id: str, reason: str) -> None:
        """A server whose move failed is running again."""
        await control.undrain(self.session, server_id, reason)

    async def pools(self) -> dict[PoolKey, Pool]:
        """Every pool as committed (not locked)."""
        return await inventory.pools(self.session)

    async def forget_registered(self, server_id: str) -> None:
        """Stop watching a registered server."""
        await control.forget_registered(self.session, server_id)

    async def registered_servers(self, limit: int) -> list[RegisteredServer]:
        """Registered servers, the oldest unanswered first."""
        return await control.registered_servers(self.session, limit)

    async def mark_unanswered(self, server_ids: list[str], since: bool) -> None:
        """Start (since=True) or clear registered servers' unanswered clocks."""
        await control.mark_unanswered(self.session, server_ids, since)

    async def lock_pool(self, region: str, gpu_type: str) -> tuple[Pool | None, list[GpuOnRecord], set[str]]:
        """The pool locked (with planning's lock), its GPUs, and the live servers holding them."""
        return await capacity.lock_pool(self.session, region, gpu_type)

    async def apply_capacity_plan(
        self, region: str, gpu_type: str, plan: CapacityPlan, new_ids: dict[str, list[str]]
    ) -> None:
        """Convert, release and add the plan's GPUs; the pool's counters follow its rows."""
        await capacity.apply_plan(self.session, region, gpu_type, plan, new_ids)

    async def capacity_change_on_record(self, request_id: str) -> bool:
        """True when the capacity change request was carried out or refused before."""
        return await capacity.change_on_record(self.session, request_id)

    async def record_capacity_change(
        self, event: CapacityChangeRequested, result: str, reason: str | None, applied: dict[str, Any]
    ) -> bool:
        """Audit the request once; False when its request id is on record already."""
        return await capacity.record_change(self.session, event, result, reason, applied)

    async def gpu_classes(self, gpu_ids: list[str]) -> dict[str, int]:
        """How many of the GPUs are of each pricing class."""
        return await capacity.gpu_classes(self.session, gpu_ids)

    async def reprice_server(self, server_id: str, pricing_class: str, cost_per_hour: float) -> None:
        """A running server's new pricing class and $/h."""
        await capacity.reprice_server(self.session, server_id, pricing_class, cost_per_hour)


class SqlUnitOfWork(shared_uow.SqlUnitOfWork[AllocatorRepository]):
    """`UnitOfWork` over a session factory: one session and transaction per `transaction()`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions, SqlAllocatorRepository)

    async def refresh_metrics(self, metrics: AllocatorMetrics) -> None:
        """Set the metrics' gauges from the committed state."""
        await metrics.refresh(self.sessions)
