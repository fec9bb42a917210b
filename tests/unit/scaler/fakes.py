"""An in-memory scaler store: the same ScalerRepository Protocol as the SQL one, for unit tests of the use cases.

Each query does what its SQL does (see services/scaler/adapters/*_tables.py), on plain Python.
"""

from __future__ import annotations

import copy
import math
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from statistics import mean

from services.scaler.adapters.repository import Key, ScalerRepository
from services.scaler.domain.backoff import Refusals
from services.scaler.domain.measured import Measured
from services.scaler.domain.planner import PlannedAction
from services.scaler.domain.series import DemandSample, compact
from services.scaler.domain.signals import combine
from services.scaler.domain.tiers import Tier
from shared.events import (
    ActionKind,
    DemandForecasted,
    DemandWindowReported,
    Event,
    ModelLoaded,
    ScalingSignalRaised,
    ServerMetricsReported,
    SignalKind,
    Topic,
)

PENDING = "pending"


@dataclass
class ActionRow:
    """A recorded scaling action, as the scaling_action table holds it."""

    action_id: str
    action: PlannedAction
    status: str
    requested_at: datetime
    resolved_at: datetime | None = None


@dataclass
class ScalerState:
    """What the scaler's tables hold, as plain Python."""

    inbox: set[tuple[str, uuid.UUID]] = field(default_factory=set)
    windows: dict[uuid.UUID, DemandWindowReported] = field(default_factory=dict)
    placements: dict[tuple[str, str], ModelLoaded] = field(default_factory=dict)  # (server, model)
    utilization: dict[tuple[str, str], ServerMetricsReported] = field(default_factory=dict)  # (server, model or "")
    signals: list[ScalingSignalRaised] = field(default_factory=list)
    actions: dict[str, ActionRow] = field(default_factory=dict)
    tiers: dict[str, tuple[Tier, float, datetime]] = field(default_factory=dict)  # tier, rph, changed_at
    forecasts: list[tuple[DemandForecasted, int]] = field(default_factory=list)  # with its bucket_s
    outbox: list[tuple[str, str, Event]] = field(default_factory=list)
    refusals: dict[Key, Refusals] = field(default_factory=dict)  # the allocation_backoff table
    capacity: dict[Key, Measured] = field(default_factory=dict)  # capacity_estimate: (model, GPU type)

    def announced(self, topic: Topic) -> list[Event]:
        """The events queued for `topic`, in order."""
        return [event for name, _, event in self.outbox if name == topic.name]

    def statuses(self, model_id: str) -> dict[str, str]:
        """Region -> status of the model's actions (the latest per region)."""
        rows = sorted((r for r in self.actions.values() if r.action.model_id == model_id), key=lambda r: r.requested_at)
        return {r.action.region: r.status for r in rows}


class FakeScalerRepository:
    """ScalerRepository over a ScalerState (the fake store hands out one per transaction)."""

    def __init__(self, state: ScalerState) -> None:
        self.state = state

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        new = (consumer, event_id) not in self.state.inbox
        self.state.inbox.add((consumer, event_id))
        return new

    async def announce(self, topic: Topic, event: Event, key: str) -> None:
        self.state.outbox.append((topic.name, key, event))

    async def save_demand_window(self, event: DemandWindowReported) -> None:
        if event.event_id in self.state.windows:
            raise ValueError(f"duplicate key {event.event_id}")  # the primary key's unique violation
        self.state.windows[event.event_id] = event

    async def demand_counts(self, since: datetime, until: datetime, bucket_s: int) -> dict[Key, dict[int, float]]:
        counts: dict[Key, dict[int, float]] = defaultdict(dict)
        for w in self.state.windows.values():
            if since <= w.window_start < until:
                bucket = math.floor(w.window_start.timestamp() / bucket_s)
                row = counts[(w.model_id, w.region)]
                row[bucket] = row.get(bucket, 0.0) + float(w.requests)
        return counts

    async def last_requests(self, since: datetime) -> dict[Key, datetime]:
        last: dict[Key, datetime] = {}
        for w in self.state.windows.values():
            if w.requests > 0 and w.window_start >= since:
                key = (w.model_id, w.region)
                last[key] = max(last.get(key, w.window_end), w.window_end)
        return last

    async def place(self, event: ModelLoaded) -> None:
        self.state.placements.setdefault((event.server_id, event.model_id), event)

    async def unplace(self, server_id: str, model_id: str | None = None) -> None:
        for server, model in list(self.state.placements):
            if server == server_id and model_id in (None, model):
                del self.state.placements[(server, model)]

    async def instances(self, model_id: str, region: str) -> int:
        return sum(1 for p in self.state.placements.values() if (p.model_id, p.region) == (model_id, region))

    async def placements(self) -> dict[Key, tuple[int, datetime]]:
        found: dict[Key, tuple[int, datetime]] = {}
        for p in self.state.placements.values():
            count, at = found.get((p.model_id, p.region), (0, p.occurred_at))
            found[(p.model_id, p.region)] = (count + 1, max(at, p.occurred_at))
        return found

    async def save_utilization(self, event: ServerMetricsReported) -> None:
        key = (event.server_id, event.model_id or "")
        known = self.state.utilization.get(key)
        if known is None or known.occurred_at < event.occurred_at:  # an older report arriving late loses
            self.state.utilization[key] = event

    async def utilizations(self, since: datetime) -> dict[Key, float]:
        samples: dict[Key, list[float]] = defaultdict(list)
        for (server, model), report in self.state.utilization.items():
            if report.occurred_at < since:
                continue
            # A server-wide report (model "") counts for every model on the server.
            models = [model] if model else [m for s, m in self.state.placements if s == server]
            for m in models:
                samples[(m, report.region)].append(report.utilization)
        return {key: mean(values) for key, values in samples.items()}

    async def save_signal(self, event: ScalingSignalRaised) -> None:
        self.state.signals.append(event)

    def _signal_targets(self, signal: ScalingSignalRaised) -> list[Key]:
        if signal.model_id is not None:
            return [(signal.model_id, _first(signal.region, ""))]
        # about a server: it counts for the models on it, in their region unless the signal names one
        on = [p for (s, _), p in self.state.placements.items() if s == signal.server_id]
        return [(p.model_id, _first(signal.region, p.region, "")) for p in on]

    async def pressures(self, since: datetime) -> dict[Key, int]:
        wants_more: dict[Key, bool] = {}
        for signal in (s for s in self.state.signals if s.occurred_at >= since):
            for key in self._signal_targets(signal):
                wants_more[key] = wants_more.get(key, False) or signal.kind is not SignalKind.SCALE_DOWN
        return {key: 1 if more else -1 for key, more in wants_more.items()}

    async def signal_sizes(self, since: datetime) -> dict[Key, float]:
        found: dict[Key, list[tuple[bool, float | None]]] = defaultdict(list)
        for signal in (s for s in self.state.signals if s.occurred_at >= since):
            for key in self._signal_targets(signal):
                found[key].append((signal.kind is not SignalKind.SCALE_DOWN, signal.factor))
        combined = {key: combine(signals) for key, signals in found.items()}
        return {key: p.change for key, p in combined.items() if p is not None and p.change is not None}

    async def measured_capacity(self, model_id: str, gpu_type: str) -> Measured | None:
        return self.state.capacity.get((model_id, gpu_type))

    async def save_measured_capacity(self, model_id: str, gpu_type: str, measured: Measured) -> None:
        self.state.capacity[(model_id, gpu_type)] = measured

    async def measured_capacities(self) -> dict[Key, Measured]:
        return dict(self.state.capacity)

    async def save_action(self, action: PlannedAction, action_id: str, now: datetime) -> None:
        self.state.actions[action_id] = ActionRow(action_id, action, PENDING, now)

    async def resolve_action(self, action_id: str, status: str, at: datetime) -> bool:
        closable = [PENDING, "overdue", "failed"] if status == "confirmed" else [PENDING, "overdue"]
        row = self.state.actions.get(action_id)
        if row is None or row.status not in closable:
            return False
        row.status, row.resolved_at = status, at
        return True

    async def action_kind(self, action_id: str) -> ActionKind | None:
        row = self.state.actions.get(action_id)
        return None if row is None else row.action.kind

    async def refusals(self) -> dict[Key, Refusals]:
        return dict(self.state.refusals)

    async def refusals_of(self, model_id: str, region: str) -> Refusals | None:
        return self.state.refusals.get((model_id, region))

    async def save_refusals(self, model_id: str, region: str, refusals: Refusals) -> None:
        self.state.refusals[(model_id, region)] = refusals

    async def forget_refusals(self, model_id: str, region: str) -> None:
        self.state.refusals.pop((model_id, region), None)

    async def fail_pending(self, model_id: str, region: str, at: datetime) -> None:
        for row in self.state.actions.values():
            if (row.action.model_id, row.action.region, row.status) == (model_id, region, PENDING):
                row.status, row.resolved_at = "failed", at

    async def has_pending(self, model_id: str, region: str) -> bool:
        return any(
            (r.action.model_id, r.action.region, r.status) == (model_id, region, PENDING)
            for r in self.state.actions.values()
        )

    async def action_state(self, since: datetime) -> tuple[set[Key], dict[Key, datetime]]:
        pending: set[Key] = set()
        last: dict[Key, datetime] = {}
        for row in self.state.actions.values():
            if row.status == PENDING or row.requested_at >= since:
                key = (row.action.model_id, row.action.region)
                if row.status == PENDING:
                    pending.add(key)
                last[key] = max(last.get(key, row.requested_at), row.requested_at)
        return pending, last

    async def mark_overdue(self, before: datetime) -> list[tuple[str, str, str, datetime]]:
        late = [r for r in self.state.actions.values() if r.status == PENDING and r.requested_at < before]
        for row in late:
            row.status = "overdue"
        return [(r.action_id, r.action.model_id, r.action.region, r.requested_at) for r in late]

    async def tiers(self) -> dict[str, Tier]:
        return {model: tier for model, (tier, _, _) in self.state.tiers.items()}

    async def save_tier(self, model_id: str, tier: Tier, rph: float, now: datetime) -> None:
        known = self.state.tiers.get(model_id)
        changed_at = known[2] if known is not None and known[0] is tier else now
        self.state.tiers[model_id] = (tier, rph, changed_at)

    async def save_forecast(self, event: DemandForecasted, bucket_s: int, extra: dict[str, dict[str, float]]) -> None:
        self.state.forecasts.append((event, bucket_s))

    async def forecasted_horizons(self, since: datetime) -> set[tuple[str, str, datetime]]:
        return {
            (f.model_id, f.region or "", f.horizon_start) for f, _ in self.state.forecasts if f.horizon_start >= since
        }

    async def compact_history(self, before: datetime, bucket_s: int) -> int:
        aged = [w for w in self.state.windows.values() if w.window_start < before]
        samples = [
            DemandSample(w.model_id, w.region, w.window_start, w.window_end, w.requests, w.tokens_in, w.tokens_out,
                         w.latency_p95_ms)
            for w in aged
        ]  # fmt: skip
        merged = compact(samples, before, bucket_s)
        if len(merged) == len(aged):
            return 0
        for w in aged:
            del self.state.windows[w.event_id]
        for s in merged:
            window = DemandWindowReported(
                source="scaler", model_id=s.model_id, region=s.region, window_start=s.window_start,
                window_end=s.window_end, requests=s.requests, ok=s.requests, tokens_in=s.tokens_in,
                tokens_out=s.tokens_out, latency_p95_ms=s.latency_p95_ms,
            )  # fmt: skip
            self.state.windows[window.event_id] = window
        return len(aged) - len(merged)

    async def drop_old_forecasts(self, before: datetime) -> None:
        self.state.forecasts = [(f, b) for f, b in self.state.forecasts if f.occurred_at >= before]


def _first(*values: str | None) -> str:
    """SQL's coalesce: the first value that is not None."""
    return next(v for v in values if v is not None)


class FakeScalerStore:
    """Transactions over an in-memory state: a block that raises leaves the state as it was (rollback)."""

    def __init__(self, state: ScalerState | None = None, repository: type[FakeScalerRepository] | None = None) -> None:
        self.state = state or ScalerState()
        self.repository = repository or FakeScalerRepository  # a test may pass one that fails on purpose
        self.commits = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ScalerRepository]:
        """A repository on a copy of the state; the copy becomes the state when the block ends."""
        working = copy.deepcopy(self.state)
        yield self.repository(working)
        self.state = working
        self.commits += 1
