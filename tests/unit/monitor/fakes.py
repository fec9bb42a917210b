"""An in-memory monitor store: the same MonitorRepository Protocol as the SQL one, for unit tests."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from services.monitor.adapters.repository import MonitorRepository
from services.monitor.domain.alerts import AlertStatus, Phase
from services.monitor.domain.cost import Price, ServerCost
from services.monitor.domain.demand import DemandFigures
from services.monitor.domain.fleet import Target
from services.monitor.domain.rounds import TargetRound
from services.monitor.domain.rules import DEFAULT_RULES, AlertRule
from shared.events import AlertChanged, DemandWindowReported, Event, PricesPublished, ServerAllocated, Topic


@dataclass
class Outgoing:
    """An outbox row."""

    topic: str
    key: str
    event: Event
    published_at: datetime | None = None


@dataclass
class MonitorState:
    """What the monitor's tables hold, as plain Python."""

    inbox: dict[tuple[str, uuid.UUID], datetime] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    last_errors: dict[str, str | None] = field(default_factory=dict)
    models: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # -> (triton model, region)
    prices: dict[tuple[str, str], Price] = field(default_factory=dict)
    rules: list[AlertRule] = field(default_factory=lambda: list(DEFAULT_RULES))
    signals: dict[tuple[str, str], datetime] = field(default_factory=dict)
    alert_states: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    alert_history: list[AlertChanged] = field(default_factory=list)
    demand_windows: list[tuple[DemandWindowReported, float | None]] = field(default_factory=list)
    metric_windows: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[Outgoing] = field(default_factory=list)

    def announced(self, topic: Topic) -> list[Event]:
        """The events queued for `topic`, in order."""
        return [row.event for row in self.outbox if row.topic == topic.name]

    def firing(self) -> set[tuple[str, str]]:
        """(rule, scope key) of every alert that fires now."""
        return {k for k, row in self.alert_states.items() if row["phase"] == Phase.FIRING.value}


class FakeMonitorRepository:
    """MonitorRepository over a MonitorState (the fake store hands out one per transaction)."""

    def __init__(self, state: MonitorState) -> None:
        self.state = state

    async def first_delivery(self, consumer: str, event_id: uuid.UUID) -> bool:
        if (consumer, event_id) in self.state.inbox:
            return False
        self.state.inbox[(consumer, event_id)] = datetime.now(UTC)
        return True

    async def announce(self, topic: Topic, event: Event, key: str) -> None:
        self.state.outbox.append(Outgoing(topic.name, key, event))

    async def upsert_target(self, event: ServerAllocated) -> None:
        known = self.state.targets.get(event.server_id)
        self.state.targets[event.server_id] = Target(
            event.server_id, event.metrics_url, event.region, event.gpu_type, event.gpu_count, event.cost_per_hour,
            event.pricing_class, known.consecutive_failures if known else 0,
        )  # fmt: skip

    async def remove_target(self, server_id: str) -> None:
        self.state.targets.pop(server_id, None)
        self.state.models = {k: v for k, v in self.state.models.items() if k[0] != server_id}

    async def set_model(self, server_id: str, model_id: str, triton_model: str, region: str) -> None:
        self.state.models[(server_id, model_id)] = (triton_model, region)

    async def unset_model(self, server_id: str, model_id: str) -> None:
        self.state.models.pop((server_id, model_id), None)

    async def load_targets(self) -> list[Target]:
        def held(sid: str) -> dict[str, str]:
            return {triton: model for (s, model), (triton, _) in self.state.models.items() if s == sid}

        return [replace(t, models=held(sid)) for sid, t in sorted(self.state.targets.items())]

    async def record_scrapes(self, failures: dict[str, int], errors: dict[str, str | None], at: datetime) -> None:
        for sid, count in failures.items():
            if sid in self.state.targets:
                self.state.targets[sid] = replace(self.state.targets[sid], consecutive_failures=count)
                self.state.last_errors[sid] = errors.get(sid) or None

    async def upsert_prices(self, event: PricesPublished) -> None:
        for p in event.prices:
            price = Price(p.on_demand_per_hour, p.spot_per_hour, p.reserved_per_hour)
            self.state.prices[(p.region, p.gpu_type)] = price

    async def load_prices(self) -> dict[tuple[str, str], Price]:
        return dict(self.state.prices)

    async def load_rules(self) -> list[AlertRule]:
        return sorted(self.state.rules, key=lambda r: r.name)

    async def signals_raised_at(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
        return {k: self.state.signals[k] for k in keys if k in self.state.signals}

    async def mark_signal(self, kind: str, key: str, at: datetime) -> None:
        self.state.signals[(kind, key)] = at

    async def load_alert_states(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], AlertStatus]:
        rows = {k: self.state.alert_states[k] for k in keys if k in self.state.alert_states}
        return {k: AlertStatus(Phase(r["phase"]), r["since"], r["fired_at"], r["value"]) for k, r in rows.items()}

    async def save_alert_states(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.state.alert_states[(row["rule"], row["scope_key"])] = dict(row)

    async def add_alert_history(self, events: list[AlertChanged]) -> None:
        self.state.alert_history.extend(events)

    async def firing_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for key in self.state.firing():
            row = self.state.alert_states[key]
            counts[(row["rule"], row["severity"])] = counts.get((row["rule"], row["severity"]), 0) + 1
        return counts

    async def model_servers(self, model_id: str, region: str) -> list[ServerCost]:
        holding = {s for (s, m), (_, _) in self.state.models.items() if m == model_id}
        targets = [t for sid, t in self.state.targets.items() if sid in holding and t.region == region]
        per_server = {t.server_id: sum(1 for s, _ in self.state.models if s == t.server_id) for t in targets}
        return [replace(t.cost(), models=per_server[t.server_id] or 1) for t in targets]

    async def add_demand_window(self, event: DemandWindowReported, cost_per_token: float | None) -> None:
        self.state.demand_windows.append((event, cost_per_token))

    async def latest_demand(self, since: datetime) -> dict[tuple[str, str], DemandFigures]:
        latest: dict[tuple[str, str], tuple[DemandWindowReported, float | None]] = {}
        for event, per_token in self.state.demand_windows:
            key, known = (event.model_id, event.region), latest.get((event.model_id, event.region))
            if event.window_end >= since and (known is None or known[0].window_end < event.window_end):
                latest[key] = (event, per_token)
        return {
            k: DemandFigures(e.latency_p50_ms, e.latency_p95_ms, e.latency_p99_ms, c) for k, (e, c) in latest.items()
        }

    async def store_windows(self, rounds: Sequence[TargetRound], per_server: dict[str, float], now: datetime) -> None:
        for r in rounds:
            for w in r.windows:
                model_id = r.target.model_id(w.model_id) if w.model_id else ""
                row = {"server_id": r.target.server_id, "model_id": model_id, "window_end": now, "window": w}
                self.state.metric_windows.append(row)


class FakeMonitorStore:
    """Transactions over an in-memory state: a block that raises leaves the state as it was (rollback)."""

    def __init__(self, state: MonitorState | None = None) -> None:
        self.state = state or MonitorState()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MonitorRepository]:
        working = copy.deepcopy(self.state)
        yield FakeMonitorRepository(working)
        self.state = working
