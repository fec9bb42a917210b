"""The monitor's repository: the Protocol the use cases depend on, and its SQLAlchemy implementation.

A use case opens one transaction (`store.transaction()`) and gets a repository bound to it; every
read and write of that message or round goes through it, and it commits when the block ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from services.monitor.adapters.alert_tables import AlertTables
from services.monitor.adapters.fleet_tables import FleetTables
from services.monitor.adapters.orm import inbox, outbox
from services.monitor.adapters.window_tables import WindowTables
from services.monitor.domain.alerts import AlertStatus
from services.monitor.domain.cost import Price, ServerCost
from services.monitor.domain.demand import DemandFigures
from services.monitor.domain.fleet import Target
from services.monitor.domain.rounds import TargetRound
from services.monitor.domain.rules import AlertRule
from shared.events import AlertChanged, DemandWindowReported, Event, PricesPublished, ServerAllocated, Topic
from shared.unit_of_work import SqlRepository, Transactions, UnitOfWork, unit_of_work


class MonitorRepository(Protocol):
    """Everything the monitor's use cases read and write, inside one transaction."""

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        """Record the event in the inbox; False when this consumer has applied it already."""

    async def announce(self, topic: Topic, event: Event, key: str) -> None:
        """Queue an event to publish after the commit (the outbox)."""

    async def upsert_target(self, event: ServerAllocated) -> None:
        """Start (or keep) scraping a server; a re-allocation updates its address and price."""

    async def remove_target(self, server_id: str) -> None:
        """Stop scraping a released server and forget its models."""

    async def set_model(self, server_id: str, model_id: str, triton_model: str, region: str) -> None:
        """Record that a server holds a model."""

    async def unset_model(self, server_id: str, model_id: str) -> None:
        """Record that a server no longer holds a model."""

    async def load_targets(self) -> list[Target]:
        """Every known server with the models it holds."""

    async def record_scrapes(self, failures: dict[str, int], errors: dict[str, str | None], at: datetime) -> None:
        """Store each target's failed-in-a-row count and last error."""

    async def upsert_prices(self, event: PricesPublished) -> None:
        """Replace the prices the event lists (others stay as they were)."""

    async def load_prices(self) -> dict[tuple[str, str], Price]:
        """The latest price list, by (region, gpu type)."""

    async def load_rules(self) -> list[AlertRule]:
        """The operators' rules table."""

    async def signals_raised_at(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
        """When each (signal kind, scope) was last raised, locked for this transaction."""

    async def mark_signal(self, kind: str, key: str, at: datetime) -> None:
        """Remember that a signal was raised (its cooldown starts)."""

    async def load_alert_states(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], AlertStatus]:
        """The states of (rule, scope key) pairs, locked for this transaction."""

    async def save_alert_states(self, rows: list[dict[str, Any]]) -> None:
        """Upsert changed states (rows from `alert_tables.state_row`)."""

    async def add_alert_history(self, events: list[AlertChanged]) -> None:
        """Append firings and resolutions to the alert history."""

    async def firing_counts(self) -> dict[tuple[str, str], int]:
        """How many alerts fire now, per (rule, severity)."""

    async def model_servers(self, model_id: str, region: str) -> list[ServerCost]:
        """The price facts of the servers holding a model in a region."""

    async def add_demand_window(self, event: DemandWindowReported, cost_per_token: float | None) -> None:
        """Store the router's window with the cost per token derived on arrival."""

    async def latest_demand(self, since: datetime) -> dict[tuple[str, str], DemandFigures]:
        """The newest demand window per (model, region) that ended at or after `since`."""

    async def store_windows(self, rounds: Sequence[TargetRound], per_server: dict[str, float], now: datetime) -> None:
        """Keep a round's windows: one per server and one per model it serves."""


# Opens transactions on the monitor's state (the unit of work); `monitor_store` binds the SQL repository.
MonitorStore = UnitOfWork[MonitorRepository]
Database = Transactions[MonitorRepository]


class SqlMonitorRepository(SqlRepository, FleetTables, AlertTables, WindowTables):
    """The repository on the monitor's Postgres schema, bound to one session."""

    inbox_table = inbox
    outbox_table = outbox


def monitor_store(database: Database) -> MonitorStore:
    """The unit of work over a session factory, or the store itself (a fake in unit tests)."""
    return unit_of_work(database, SqlMonitorRepository)
