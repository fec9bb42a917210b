"""An in-memory cost store: the same CostRepository Protocol as the SQL one, for unit tests of the use cases."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.cost.adapters.repository import CostRepository
from services.cost.domain.applying import RecommendationRow
from services.cost.domain.cycle import Forecast
from services.cost.domain.fleet import DemandWindow, PoolCapacity, Server
from services.cost.domain.pricing import (
    DEFAULT_GPU_RATES,
    DEFAULT_REGION_RATES,
    Catalogue,
    GpuRate,
    PricingClass,
    RegionRate,
)
from services.cost.domain.recommendation import Recommendation
from shared.events import (
    CapacityChanged,
    DemandForecasted,
    DemandWindowReported,
    Event,
    ServerAllocated,
    ServerMetricsReported,
    Topic,
)


@dataclass
class CostState:
    """What the cost tables hold, as plain Python."""

    inbox: set[tuple[str, uuid.UUID]] = field(default_factory=set)
    servers: dict[str, Server] = field(default_factory=dict)
    allocated_at: dict[str, datetime] = field(default_factory=dict)
    released_at: dict[str, datetime | None] = field(default_factory=dict)
    models: set[tuple[str, str]] = field(default_factory=set)
    utilization: dict[str, tuple[float, float, datetime]] = field(default_factory=dict)
    windows: dict[uuid.UUID, DemandWindow] = field(default_factory=dict)
    forecasts: dict[tuple[str, str], Forecast] = field(default_factory=dict)
    gpu_rates: dict[str, GpuRate] = field(default_factory=lambda: {g.gpu_type: g for g in DEFAULT_GPU_RATES})
    region_rates: dict[str, RegionRate] = field(default_factory=lambda: {r.region: r for r in DEFAULT_REGION_RATES})
    reports: list[dict[str, Any]] = field(default_factory=list)
    recommendations: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: list[tuple[str, str, Event]] = field(default_factory=list)
    capacity: dict[tuple[str, str], PoolCapacity] = field(default_factory=dict)

    def announced(self, topic: Topic) -> list[Event]:
        """The events queued for `topic`, in order."""
        return [event for name, _, event in self.outbox if name == topic.name]


class FakeCostRepository:
    """CostRepository over a CostState (the fake store hands out one per transaction)."""

    def __init__(self, state: CostState, leader_busy: bool) -> None:
        self.state = state
        self._leader_busy = leader_busy

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        new = (consumer, event_id) not in self.state.inbox
        self.state.inbox.add((consumer, event_id))
        return new

    async def announce(self, topic: Topic, event: Event, key: str) -> None:
        self.state.outbox.append((topic.name, key, event))

    async def try_lead_cycle(self) -> bool:
        return not self._leader_busy

    async def wait_to_lead_cycle(self, timeout_s: float) -> None:
        if self._leader_busy:
            raise TimeoutError("lock timeout")  # what Postgres's lock_timeout amounts to

    async def record_allocation(self, event: ServerAllocated) -> None:
        s, released = self.state, self.state.released_at.get(event.server_id)
        s.servers[event.server_id] = Server(
            event.server_id,
            event.region,
            event.gpu_type,
            event.gpu_count,
            PricingClass(event.pricing_class),
            event.cost_per_hour,
        )
        s.allocated_at[event.server_id] = event.occurred_at
        s.released_at[event.server_id] = released if released is not None and released >= event.occurred_at else None

    async def record_capacity(self, event: CapacityChanged) -> None:
        for server in event.repriced:
            if server.server_id in self.state.servers:
                self.state.servers[server.server_id] = replace(
                    self.state.servers[server.server_id],
                    pricing_class=PricingClass(server.pricing_class),
                    reported_cost_per_hour=server.cost_per_hour,
                )
        by_class = {str(c): n for c, n in event.gpus_by_class.items()}
        self.state.capacity[(event.region, event.gpu_type)] = PoolCapacity(
            event.region,
            event.gpu_type,
            by_class.get("on_demand", 0),
            by_class.get("spot", 0),
            by_class.get("reserved", 0),
            event.commitment_months,
        )

    async def load_capacity(self) -> list[PoolCapacity]:
        return [self.state.capacity[k] for k in sorted(self.state.capacity)]

    async def add_model(self, server_id: str, model_id: str) -> None:
        self.state.models.add((server_id, model_id))

    async def remove_model(self, server_id: str, model_id: str) -> None:
        self.state.models.discard((server_id, model_id))

    async def release_server(self, server_id: str, at: datetime) -> None:
        if server_id in self.state.servers:
            self.state.released_at[server_id] = at
        self.state.models = {(s, m) for s, m in self.state.models if s != server_id}

    async def record_utilization(self, event: ServerMetricsReported) -> None:
        known = self.state.utilization.get(event.server_id)
        if known is None or known[2] <= event.occurred_at:
            self.state.utilization[event.server_id] = (event.utilization, event.throughput_rps, event.occurred_at)

    async def add_demand_window(self, event: DemandWindowReported) -> None:
        tokens = event.tokens_in + event.tokens_out
        self.state.windows.setdefault(
            event.event_id,
            DemandWindow(
                event.model_id, event.region, event.window_start, event.window_end, event.requests, tokens,
                event.latency_p50_ms,
            ),
        )  # fmt: skip

    async def save_forecast(self, event: DemandForecasted) -> None:
        key = (event.model_id, event.region or "")
        known = self.state.forecasts.get(key)
        if known is None or known.horizon_start <= event.horizon_start:
            hours = tuple(event.requests_per_hour)
            self.state.forecasts[key] = Forecast(event.model_id, event.region or None, event.horizon_start, hours)

    async def prune_inputs(self, windows_ended_before: datetime, forecasts_before: datetime) -> None:
        s = self.state
        s.windows = {k: w for k, w in s.windows.items() if w.window_end >= windows_ended_before}
        s.forecasts = {k: f for k, f in s.forecasts.items() if f.horizon_start >= forecasts_before}

    async def load_servers(self) -> list[Server]:
        s = self.state
        servers = []
        for sid in sorted(sid for sid, at in s.released_at.items() if at is None):
            util, rps, _ = s.utilization.get(sid, (None, None, None))
            held = tuple(sorted(m for server, m in s.models if server == sid))
            servers.append(replace(s.servers[sid], models=held, utilization=util, throughput_rps=rps))
        return servers

    async def load_windows(self, since: datetime) -> list[DemandWindow]:
        return [w for w in self.state.windows.values() if w.window_end > since]

    async def load_forecasts(self) -> list[Forecast]:
        return [self.state.forecasts[k] for k in sorted(self.state.forecasts)]

    async def load_catalogue(self) -> Catalogue:
        s = self.state
        return Catalogue(
            gpus=tuple(s.gpu_rates[k] for k in sorted(s.gpu_rates)),
            regions=tuple(s.region_rates[k] for k in sorted(s.region_rates)),
        )

    async def save_gpu_rate(self, rate: GpuRate, now: datetime) -> None:
        self.state.gpu_rates[rate.gpu_type] = rate

    async def save_region_rate(self, rate: RegionRate, now: datetime) -> None:
        self.state.region_rates[rate.region] = rate

    async def add_report(self, report_id: str, trigger: str, at: datetime, total: float, body: dict[str, Any]) -> None:
        self.state.reports.append({"report_id": report_id, "trigger": trigger, "created_at": at, "body": body})

    async def latest_report_body(self) -> dict[str, Any] | None:
        newest = max(self.state.reports, key=lambda r: r["created_at"], default=None)
        return dict(newest["body"]) if newest is not None else None

    async def add_recommendation(self, rec: Recommendation, now: datetime) -> bool:
        if rec.recommendation_id in self.state.recommendations:
            return False
        self.state.recommendations[rec.recommendation_id] = {
            "recommendation_id": rec.recommendation_id, "key": rec.key, "kind": rec.kind, "region": rec.region,
            "gpu_type": rec.gpu_type, "model_id": rec.model_id, "summary": rec.summary[:2000],
            "savings_per_month": rec.savings_per_month, "action": rec.action, "evidence": rec.evidence,
            "status": "open", "created_at": now, "updated_at": now, "applied_request": None,
        }  # fmt: skip
        return True

    async def reopen_recommendation(self, rec: Recommendation, now: datetime) -> bool:
        row = self.state.recommendations.get(rec.recommendation_id)
        if row is None or row["status"] not in ("superseded", "withdrawn"):
            return False
        row.update(status="open", updated_at=now, evidence=rec.evidence, savings_per_month=rec.savings_per_month)
        return True

    async def refresh_recommendation(self, rec: Recommendation, now: datetime) -> None:
        row = self.state.recommendations.get(rec.recommendation_id)
        if row is not None:
            row.update(evidence=rec.evidence, updated_at=now)

    async def supersede_others(self, rec: Recommendation, now: datetime) -> None:
        for rid, row in self.state.recommendations.items():
            if row["key"] == rec.key and rid != rec.recommendation_id and row["status"] == "open":
                row.update(status="superseded", updated_at=now)

    async def withdraw_open_except(self, keys: set[str], now: datetime) -> None:
        for row in self.state.recommendations.values():
            if row["status"] == "open" and row["key"] not in keys:
                row.update(status="withdrawn", updated_at=now)

    async def open_savings_by_kind(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for row in await self.open_recommendations():
            totals[row["kind"]] = totals.get(row["kind"], 0.0) + row["savings_per_month"]
        return totals

    async def open_recommendations(self) -> list[dict[str, Any]]:
        rows = [dict(r) for r in self.state.recommendations.values() if r["status"] == "open"]
        return sorted(rows, key=lambda r: -r["savings_per_month"])

    async def recommendation_for_update(
        self, recommendation_id: str, lock_timeout_s: float
    ) -> RecommendationRow | None:
        r = self.state.recommendations.get(recommendation_id)
        if r is None:
            return None
        return RecommendationRow(
            recommendation_id, r["kind"], r["region"], r["gpu_type"], r["model_id"], r["action"], r["evidence"],
            r["status"], r["applied_request"],
        )  # fmt: skip

    async def mark_applied(self, recommendation_id: str, requests: list[dict[str, Any]], now: datetime) -> None:
        self.state.recommendations[recommendation_id].update(status="applied", updated_at=now, applied_request=requests)


class FakeCostStore:
    """Transactions over an in-memory state: a block that raises leaves the state as it was (rollback)."""

    def __init__(self, state: CostState | None = None) -> None:
        self.state = state or CostState()
        self.leader_busy = False  # True: another replica holds the cycle's turn
        self.commits = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[CostRepository]:
        working = copy.deepcopy(self.state)
        yield FakeCostRepository(working, self.leader_busy)
        self.state = working
        self.commits += 1
