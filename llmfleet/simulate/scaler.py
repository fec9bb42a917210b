"""The scaler's evaluation round on the simulated state, through the live use case's own functions.

`services.scaler.use_cases.evaluation` reads a `Snapshot` from its tables; here the snapshot is
built from the simulation (demand per hour, placements, utilisation, monitor signals, pending
actions, tiers) with the same windows (cooldown, idle time, utilisation and signal ages), and its
`forecast_all`, `region_states` and the planner's `plan_model` decide, each model with its own
capacity per instance as the live round sizes it (`build.scaler_capacity`). One departure, a
wrapper: tiers / predictive preload can be switched off by dropping their actions (the planner has
no switch for them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from services.monitor.domain.signals import DEFAULT_SIGNAL_RULES
from services.scaler.domain.ensemble import PROVISION_QUANTILE, Forecast
from services.scaler.domain.planner import PlannedAction, PlanSettings, cold_start, plan_model
from services.scaler.domain.policy import POLICIES, PolicyName
from services.scaler.domain.series import bucket_index
from services.scaler.domain.signals import combine
from services.scaler.domain.tiers import Tier
from services.scaler.settings import ScalerSettings
from services.scaler.use_cases.evaluation import Snapshot, forecast_all, region_states
from shared.events import SignalKind

Key = tuple[str, str]


@dataclass
class ForecastCache:
    """Forecasts per (model, region, hour bucket): they depend only on the demand, so runs share them."""

    settings: ScalerSettings
    counts: dict[Key, dict[int, float]]  # requests per bucket, warm-up and run
    cache: dict[tuple[Key, int], Forecast] = field(default_factory=dict)

    @classmethod
    def from_counts(
        cls, settings: ScalerSettings, keys: list[Key], first_bucket: int, hourly: NDArray[np.float64]
    ) -> ForecastCache:
        """From hourly counts [bucket, key] starting at `first_bucket` (zero buckets are no windows)."""
        counts = {
            key: {first_bucket + b: float(v) for b, v in enumerate(hourly[:, i]) if v > 0} for i, key in enumerate(keys)
        }
        return cls(settings, counts)

    def keys(self, now: datetime) -> set[Key]:
        """Keys with demand in the history window before `now`."""
        current = bucket_index(now, self.settings.bucket_s)
        first = current - self.settings.history_buckets
        return {key for key, c in self.counts.items() if any(first <= b < current for b in c)}

    def get(self, key: Key, now: datetime, placed: bool) -> Forecast:
        """The live `forecast_all` for one key, with only the demand windows it could have read."""
        current = bucket_index(now, self.settings.bucket_s)
        if (key, current) not in self.cache:
            first = current - self.settings.history_buckets
            seen = {b: v for b, v in self.counts.get(key, {}).items() if first <= b < current}
            placements = {key: (1, now)} if placed else {}
            snapshot = Snapshot({key: seen} if seen else {}, {}, placements, {}, {}, set(), {}, {}, set())
            self.cache[(key, current)] = forecast_all(snapshot, self.settings, now)[key]
        return self.cache[(key, current)]

    def last_seen(self, key: Key, now: datetime) -> Forecast:
        """Reactive only: the last complete bucket's demand held flat, with full confidence."""
        current = bucket_index(now, self.settings.bucket_s)
        flat = np.full(self.settings.horizon_buckets, self.counts.get(key, {}).get(current - 1, 0.0))
        return Forecast(values=flat, confidence=1.0, quantiles={PROVISION_QUANTILE: flat})


@dataclass
class PendingAction:
    """An action the allocator has not answered yet, and the loads it waits for."""

    action: PlannedAction
    requested_at: datetime
    waits: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class Scaler:
    """The scaler's state between evaluations: actions, tiers, signals, when models were loaded."""

    settings: ScalerSettings
    policy: PolicyName
    capacity_rph: dict[str, float]
    forecasts: ForecastCache
    tiers_on: bool = True
    preload_on: bool = True
    forecast_on: bool = True
    pending: dict[Key, PendingAction] = field(default_factory=dict)
    last_actions: dict[Key, datetime] = field(default_factory=dict)
    tiers: dict[str, Tier] = field(default_factory=dict)
    signals: dict[tuple[Key, bool], datetime] = field(default_factory=dict)  # (key, wants more) -> last
    sized: dict[tuple[Key, SignalKind], tuple[datetime, float]] = field(default_factory=dict)  # last, its size
    loaded_at: dict[Key, datetime] = field(default_factory=dict)

    def plan_settings(self, model_id: str) -> PlanSettings:
        """The live evaluation's PlanSettings, sized for the model (`replace(..., capacity(model_id))`)."""
        s = self.settings
        return PlanSettings(
            policy=POLICIES[self.policy],
            requests_per_instance_hour=self.capacity_rph[model_id],
            cooldown=timedelta(seconds=s.cooldown_s),
            cold_idle=timedelta(seconds=s.cold_idle_s),
            max_instances=s.max_instances,
        )

    def signal(self, key: Key, kind: SignalKind, now: datetime, change: float | None = None) -> None:
        """Keep a monitor signal (only the latest of each direction matters) and its size.

        Without a size, the monitor's rule's own (+0.25, -0.20, +0.5; the p95 rule's least, +0.25).
        """
        self.signals[(key, kind is not SignalKind.SCALE_DOWN)] = now
        if change is None:
            change = next((r.factor for r in DEFAULT_SIGNAL_RULES if r.kind is kind), None)
        if change is not None:
            self.sized[(key, kind)] = (now, change)

    def signal_sizes(self, since: datetime) -> dict[Key, float]:
        """How far the recent signals push each key (the repository's rule: `signals.combine`)."""
        found: dict[Key, list[tuple[bool, float | None]]] = {}
        for (key, kind), (at, change) in self.sized.items():
            if at >= since:
                found.setdefault(key, []).append((kind is not SignalKind.SCALE_DOWN, change))
        combined = {key: combine(signals) for key, signals in found.items()}
        return {key: p.change for key, p in combined.items() if p is not None and p.change is not None}

    def pressures(self, since: datetime) -> dict[Key, int]:
        """+1 where a recent signal asks for more capacity, -1 where only for less (the repository's rule)."""
        result: dict[Key, int] = {}
        for (key, more), at in self.signals.items():
            if at >= since:
                result[key] = 1 if more or result.get(key) == 1 else -1
        return result

    def snapshot(
        self, now: datetime, placements: dict[Key, int], utilizations: dict[Key, float], last: dict[Key, datetime]
    ) -> Snapshot:
        """What `read_snapshot` would read at `now` (counts are the forecast cache's)."""
        s = self.settings
        cooldown = now - timedelta(seconds=s.cooldown_s)
        return Snapshot(
            counts={},
            last_requests={k: t for k, t in last.items() if t >= now - timedelta(seconds=s.cold_idle_s)},
            placements={k: (n, self.loaded_at.get(k, now)) for k, n in placements.items() if n > 0},
            utilizations=utilizations,
            pressures=self.pressures(now - timedelta(seconds=s.signal_max_age_s)),
            pending=set(self.pending),
            last_actions={k: t for k, t in self.last_actions.items() if t >= cooldown or k in self.pending},
            tiers=dict(self.tiers),
            forecasted=set(),
            signal_sizes=self.signal_sizes(now - timedelta(seconds=s.signal_max_age_s)),
        )

    def evaluate(self, snapshot: Snapshot, now: datetime) -> list[PlannedAction]:
        """One round: forecasts, region states and a plan per model; the actions kept."""
        keys = sorted(self.forecasts.keys(now) | snapshot.placements.keys())  # sorted: runs repeat exactly
        if self.forecast_on:
            forecasts = {key: self.forecasts.get(key, now, key in snapshot.placements) for key in keys}
        else:
            forecasts = {key: self.forecasts.last_seen(key, now) for key in keys}
        actions = []
        for model_id, states in sorted(region_states(snapshot, forecasts, self.settings).items()):
            plan = plan_model(model_id, states, self.tiers.get(model_id), self.plan_settings(model_id), now)
            self.tiers[model_id] = plan.tier
            actions += [a for a in plan.actions if self.allowed(a)]
        return actions

    def allowed(self, action: PlannedAction) -> bool:
        """False for a tier floor with tiers off, or a predictive preload with preload off."""
        if action.rule.startswith("tier_"):
            return self.tiers_on
        return self.preload_on or action.rule != "predictive_preload"

    def cold_start(self, model_id: str, region: str, instances: int) -> PlannedAction | None:
        """The router asked for a model placed nowhere: the use case's preload, unless one is pending."""
        action = cold_start(model_id, region, instances, (model_id, region) in self.pending, self.policy.value)
        return None if action is None else replace(action, extra={"pending_requests": 1.0})

    def requested(self, action: PlannedAction, now: datetime, waits: set[tuple[str, str]]) -> None:
        """The allocator took the action; it stays pending until every load it started is done."""
        key = (action.model_id, action.region)
        self.last_actions[key] = now
        if waits:
            self.pending[key] = PendingAction(action, now, set(waits))
        else:
            self.pending.pop(key, None)

    def loaded(self, server_id: str, model_id: str, region: str, now: datetime) -> None:
        """A load finished (ModelLoaded): the model is placed since now; resolve what waited for it."""
        self.loaded_at[(model_id, region)] = now
        self.released(server_id, model_id, region)

    def released(self, server_id: str, model_id: str, region: str) -> None:
        """A load that will not finish (its server went): the action no longer waits for it."""
        key = (model_id, region)
        waiting = self.pending.get(key)
        if waiting is not None:
            waiting.waits.discard((server_id, model_id))
            if not waiting.waits:
                del self.pending[key]
