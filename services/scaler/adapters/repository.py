"""The scaler's repository: the Protocol its use cases depend on, and its SQLAlchemy implementation.

A use case opens one transaction (`store.transaction()`) and gets a repository bound to it; every
read and write of that message or round goes through it, and it commits when the block ends.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from services.scaler.adapters.action_tables import ActionTables
from services.scaler.adapters.backoff_tables import BackoffTables
from services.scaler.adapters.demand_tables import DemandTables
from services.scaler.adapters.fleet_tables import FleetTables
from services.scaler.adapters.history_tables import HistoryTables
from services.scaler.adapters.orm import inbox, outbox
from services.scaler.domain.backoff import Refusals
from services.scaler.domain.measured import Measured
from services.scaler.domain.planner import PlannedAction
from services.scaler.domain.tiers import Tier
from shared.events import (
    ActionKind,
    DemandForecasted,
    DemandWindowReported,
    Event,
    ModelLoaded,
    ScalingSignalRaised,
    ServerMetricsReported,
    Topic,
)
from shared.unit_of_work import SqlRepository, Transactions, UnitOfWork, unit_of_work

Key = tuple[str, str]  # (model id, region)


class ScalerRepository(Protocol):
    """Everything the scaler's use cases read and write, inside one transaction."""

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when this consumer has applied it already."""

    async def announce(self, topic: Topic, event: Event, key: str) -> None:
        """Queue an event to publish after the commit (the outbox)."""

    async def save_demand_window(self, event: DemandWindowReported) -> None:
        """Store one demand window as the router reported it."""

    async def demand_counts(self, since: datetime, until: datetime, bucket_s: int) -> dict[Key, dict[int, float]]:
        """Requests per bucket number for every model and region with windows in [since, until)."""

    async def last_requests(self, since: datetime) -> dict[Key, datetime]:
        """When each model last had a request in each region, for those with one since `since`."""

    async def place(self, event: ModelLoaded) -> None:
        """A model is loaded on a server."""

    async def unplace(self, server_id: str, model_id: str | None = None) -> None:
        """A model (or, with no model, everything) is no longer on a server."""

    async def instances(self, model_id: str, region: str) -> int:
        """How many servers in the region have the model loaded."""

    async def placements(self) -> dict[Key, tuple[int, datetime]]:
        """Instances and the latest load time per model and region."""

    async def save_utilization(self, event: ServerMetricsReported) -> None:
        """Keep the newest utilisation report per server and model."""

    async def utilizations(self, since: datetime) -> dict[Key, float]:
        """Mean recent utilisation per model and region (server-wide reports count for the models on them)."""

    async def save_signal(self, event: ScalingSignalRaised) -> None:
        """Store a monitor signal (it counts as pressure while it is recent)."""

    async def pressures(self, since: datetime) -> dict[Key, int]:
        """+1 where recent monitor signals ask for more capacity, -1 where only for less."""

    async def signal_sizes(self, since: datetime) -> dict[Key, float]:
        """How far the recent monitor signals push each model and region (a positive fraction), where known."""

    async def measured_capacity(self, model_id: str, gpu_type: str) -> Measured | None:
        """The model's measured capacity per instance on the GPU type (locked until the commit)."""

    async def save_measured_capacity(self, model_id: str, gpu_type: str, measured: Measured) -> None:
        """Insert or replace the model's measured capacity on the GPU type."""

    async def measured_capacities(self) -> dict[Key, Measured]:
        """Every measured capacity, keyed by (model id, GPU type)."""

    async def save_action(self, action: PlannedAction, action_id: str, now: datetime) -> None:
        """Record a decision with its inputs, as pending."""

    async def resolve_action(self, action_id: str, status: str, at: datetime) -> bool:
        """Close an open action as confirmed or failed; False when there was none to close."""

    async def action_kind(self, action_id: str) -> ActionKind | None:
        """The kind of a recorded action; None when the scaler did not ask for it."""

    async def fail_pending(self, model_id: str, region: str, at: datetime) -> None:
        """The allocator could not place the model: its pending action in the region has ended."""

    async def refusals(self) -> dict[Key, Refusals]:
        """Every model and region refused since its last success."""

    async def refusals_of(self, model_id: str, region: str) -> Refusals | None:
        """The model's refusals in the region since its last success (locked until the commit)."""

    async def save_refusals(self, model_id: str, region: str, refusals: Refusals) -> None:
        """Insert or replace the model's refusals in the region."""

    async def forget_refusals(self, model_id: str, region: str) -> None:
        """A success: the model's refusals in the region no longer count."""

    async def has_pending(self, model_id: str, region: str) -> bool:
        """Whether an action for the model in the region awaits the allocator."""

    async def action_state(self, since: datetime) -> tuple[set[Key], dict[Key, datetime]]:
        """Model-region pairs with a pending action, and their last action if it was after `since`."""

    async def mark_overdue(self, before: datetime) -> list[tuple[str, str, str, datetime]]:
        """Mark pending actions requested before `before` as overdue; (action, model, region, requested_at)."""

    async def tiers(self) -> dict[str, Tier]:
        """Each model's current tier."""

    async def save_tier(self, model_id: str, tier: Tier, rph: float, now: datetime) -> None:
        """Upsert the model's tier; `changed_at` moves only when the tier does."""

    async def save_forecast(self, event: DemandForecasted, bucket_s: int, extra: dict[str, dict[str, float]]) -> None:
        """Record a forecast as published, with the ensemble's weights and back-test errors."""

    async def forecasted_horizons(self, since: datetime) -> set[tuple[str, str, datetime]]:
        """(model, region, horizon start) of forecasts already made since `since`."""

    async def compact_history(self, before: datetime, bucket_s: int) -> int:
        """Replace raw windows older than `before` by one window per model, region and bucket; rows removed."""

    async def drop_old_forecasts(self, before: datetime) -> None:
        """Forecasts older than the history kept are no longer needed to explain anything."""


# Opens transactions on the scaler's state (the unit of work); `scaler_store` binds the SQL repository.
ScalerStore = UnitOfWork[ScalerRepository]
Database = Transactions[ScalerRepository]


class SqlScalerRepository(SqlRepository, DemandTables, FleetTables, ActionTables, BackoffTables, HistoryTables):
    """The repository on the service's Postgres schema, bound to one session."""

    inbox_table = inbox
    outbox_table = outbox


def scaler_store(database: Database) -> ScalerStore:
    """The unit of work over a session factory, or the store itself (a fake in unit tests)."""
    return unit_of_work(database, SqlScalerRepository)
