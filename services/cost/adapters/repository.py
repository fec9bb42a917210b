"""The cost service's repository: the Protocol the use cases depend on, and its SQLAlchemy implementation.

A use case opens one transaction (`store.transaction()`) and gets a repository bound to it; every
read and write of that message or cycle goes through it, and it commits when the block ends.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Protocol

from services.cost.adapters.advice_tables import AdviceTables
from services.cost.adapters.fleet_tables import FleetTables
from services.cost.adapters.orm import inbox, outbox
from services.cost.adapters.usage_tables import UsageTables
from services.cost.domain.applying import RecommendationRow
from services.cost.domain.chargeback import UsageCost
from services.cost.domain.cycle import Forecast
from services.cost.domain.fleet import DemandWindow, PoolCapacity, Server
from services.cost.domain.pricing import Catalogue, GpuRate, RegionRate
from services.cost.domain.recommendation import Recommendation
from shared.events import (
    CapacityChanged,
    DemandForecasted,
    DemandWindowReported,
    Event,
    ServerAllocated,
    ServerMetricsReported,
    Topic,
    UsageMetered,
)
from shared.unit_of_work import SqlRepository, Transactions, UnitOfWork, unit_of_work


class CostRepository(Protocol):
    """Everything the cost use cases read and write, inside one transaction."""

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when this consumer has applied it already."""

    async def announce(self, topic: Topic, event: Event, key: str) -> None:
        """Queue an event to publish after the commit (the outbox)."""

    async def try_lead_cycle(self) -> bool:
        """Take the cycle's turn for this transaction; False when another replica holds it."""

    async def wait_to_lead_cycle(self, timeout_s: float) -> None:
        """Wait for the turn (a running cycle to end); raises after `timeout_s`."""

    async def record_allocation(self, event: ServerAllocated) -> None:
        """Insert or revive a server; a late duplicate of an old allocation keeps its release."""

    async def add_model(self, server_id: str, model_id: str) -> None:
        """Record that a server holds a model."""

    async def remove_model(self, server_id: str, model_id: str) -> None:
        """Record that a server no longer holds a model."""

    async def release_server(self, server_id: str, at: datetime) -> None:
        """Mark a server released and forget its models."""

    async def record_utilization(self, event: ServerMetricsReported) -> None:
        """Keep a server's latest utilisation; an older report arriving late loses."""

    async def add_demand_window(self, event: DemandWindowReported) -> None:
        """Store one demand window (once per event id)."""

    async def save_forecast(self, event: DemandForecasted) -> None:
        """Keep the newest forecast per model and region."""

    async def prune_inputs(self, windows_ended_before: datetime, forecasts_before: datetime) -> None:
        """Drop demand windows and forecasts older than the cutoffs."""

    async def record_capacity(self, event: CapacityChanged) -> None:
        """An applied capacity change: the servers it repriced, and the pool's GPUs per class."""

    async def load_capacity(self) -> list[PoolCapacity]:
        """Every pool's GPUs per pricing class as the allocator last announced them."""

    async def load_servers(self) -> list[Server]:
        """Servers not released, with their models and latest utilisation."""

    async def load_windows(self, since: datetime) -> list[DemandWindow]:
        """Demand windows that ended after `since`."""

    async def load_forecasts(self) -> list[Forecast]:
        """The latest forecast per model and region."""

    async def load_catalogue(self) -> Catalogue:
        """The pricing catalogue."""

    async def save_gpu_rate(self, rate: GpuRate, now: datetime) -> None:
        """Insert or replace one GPU type's base prices."""

    async def save_region_rate(self, rate: RegionRate, now: datetime) -> None:
        """Insert or replace one region's multiplier and egress price."""

    async def add_report(self, report_id: str, trigger: str, at: datetime, total: float, body: dict[str, Any]) -> None:
        """Keep a report with the fleet snapshot it priced."""

    async def latest_report_body(self) -> dict[str, Any] | None:
        """The body of the newest report, or None."""

    async def add_recommendation(self, rec: Recommendation, now: datetime) -> bool:
        """Store a recommendation as open; False when its id is known already."""

    async def reopen_recommendation(self, rec: Recommendation, now: datetime) -> bool:
        """Open a superseded or withdrawn recommendation again; False if it was neither."""

    async def refresh_recommendation(self, rec: Recommendation, now: datetime) -> None:
        """Keep a known recommendation's evidence current."""

    async def supersede_others(self, rec: Recommendation, now: datetime) -> None:
        """Open recommendations with the same key but another id are replaced by this one."""

    async def withdraw_open_except(self, keys: set[str], now: datetime) -> None:
        """Open recommendations whose key is not in `keys` are withdrawn."""

    async def open_savings_by_kind(self) -> dict[str, float]:
        """Monthly savings of the open recommendations, per kind."""

    async def open_recommendations(self) -> list[dict[str, Any]]:
        """Open recommendations as rows, largest savings first."""

    async def recommendation_for_update(
        self, recommendation_id: str, lock_timeout_s: float
    ) -> RecommendationRow | None:
        """A recommendation locked until commit, or None."""

    async def mark_applied(self, recommendation_id: str, requests: list[dict[str, Any]], now: datetime) -> None:
        """Record that a recommendation was applied, with the requests that went out."""

    async def add_usage(self, event: UsageMetered, priced: UsageCost, now: datetime) -> None:
        """Add one metered period of a tenant x model to its day's chargeback row."""

    async def chargeback(self, since: date, tenant: str | None = None) -> list[dict[str, Any]]:
        """Chargeback rows from `since` on (of one tenant), by day, tenant and model."""


# Opens transactions on the cost service's state (the unit of work); `cost_store` binds the SQL repository.
CostStore = UnitOfWork[CostRepository]
Database = Transactions[CostRepository]


class SqlCostRepository(SqlRepository, FleetTables, AdviceTables, UsageTables):
    """The repository on the service's Postgres schema, bound to one session."""

    inbox_table = inbox
    outbox_table = outbox


def cost_store(database: Database) -> CostStore:
    """The unit of work over a session factory, or the store itself (a fake in unit tests)."""
    return unit_of_work(database, SqlCostRepository)
