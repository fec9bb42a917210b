"""Turns one model's forecast and fleet state into scaling actions, region by region.

Stability rules live here: a region with a pending action or inside its cooldown gets nothing
new, so at most one action is in flight per model and region and capacity cannot flap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.scaler.domain.policy import CapacityInputs, Policy, decide
from services.scaler.domain.tiers import (
    COLD_IDLE,
    TIER_PLANS,
    Priority,
    Tier,
    idle_for_unload,
    min_instances,
    preload_priority,
    with_hysteresis,
)
from shared.events import ActionKind


@dataclass(frozen=True)
class RegionState:
    """What the scaler knows about a model in one region, and its forecast there."""

    region: str
    instances: int = 0
    utilization: float | None = None
    pressure: int = 0
    signal_change: float | None = None  # the size of the monitor's recent signals (domain/signals.py)
    pending: bool = False
    last_action_at: datetime | None = None
    last_request_at: datetime | None = None
    loaded_since: datetime | None = None
    predicted_rph: float = 0.0
    next_hour_requests: float = 0.0
    confidence: float = 0.0


@dataclass(frozen=True)
class PlanSettings:
    """The knobs of planning: policy, capacity per instance (the model's), cooldown, idle time, ceiling."""

    policy: Policy
    requests_per_instance_hour: float
    cooldown: timedelta = timedelta(minutes=5)
    cold_idle: timedelta = COLD_IDLE
    max_instances: int = 64


@dataclass(frozen=True)
class PlannedAction:
    """A scaling action with every input that led to it (recorded and put in the event's reason)."""

    model_id: str
    region: str
    kind: ActionKind
    current: int
    target: int
    priority: Priority
    rule: str
    policy: str
    tier: Tier
    utilization: float | None = None
    predicted_rph: float = 0.0
    confidence: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def inputs(self) -> dict[str, float]:
        """The numeric inputs of the decision (utilisation only when known)."""
        known = {"utilization": self.utilization} if self.utilization is not None else {}
        return {**known, "forecast_rph": self.predicted_rph, "confidence": self.confidence, **self.extra}

    def reason(self) -> str:
        """The inputs as one readable line."""
        util = "unknown" if self.utilization is None else f"{self.utilization:.2f}"
        parts = [
            f"rule={self.rule}",
            f"policy={self.policy}",
            f"tier={self.tier}",
            f"utilization={util}",
            f"forecast_rph={self.predicted_rph:.1f}",
            f"confidence={self.confidence:.2f}",
            f"instances={self.current}->{self.target}",
            *(f"{k}={v:g}" for k, v in sorted(self.extra.items())),
        ]
        return " ".join(parts)


@dataclass(frozen=True)
class ModelPlan:
    """The tier a model is in now and the actions that bring its capacity there."""

    model_id: str
    tier: Tier
    total_rph: float
    actions: tuple[PlannedAction, ...]


def blocked(state: RegionState, now: datetime, cooldown: timedelta) -> bool:
    """True while an action is pending or the region is inside its cooldown."""
    return state.pending or (state.last_action_at is not None and now - state.last_action_at < cooldown)


def plan_model(
    model_id: str, regions: list[RegionState], previous: Tier | None, settings: PlanSettings, now: datetime
) -> ModelPlan:
    """Actions for one model: tier floors, predictive preload, cold unload, then the policy."""
    total = sum(r.predicted_rph for r in regions)
    confidence = max((r.confidence for r in regions), default=0.0)
    # An unsure forecast moves no model between tiers: a blip must not load three regions.
    confident = confidence >= settings.policy.min_confidence
    tier = with_hysteresis(total, previous) if confident else (previous or Tier.COLD)
    known = {r.region: r for r in regions}
    for region in TIER_PLANS[tier].regions:
        known.setdefault(region, RegionState(region=region, confidence=confidence))
    actions = []
    for state in known.values():
        if blocked(state, now, settings.cooldown):
            continue
        action = _plan_region(model_id, state, tier, settings, now)
        if action is not None:
            actions.append(replace(action, extra={**action.extra, "model_rph": round(total, 1)}))
    return ModelPlan(model_id, tier, total, tuple(actions))


def _plan_region(
    model_id: str, state: RegionState, tier: Tier, settings: PlanSettings, now: datetime
) -> PlannedAction | None:
    def action(kind: ActionKind, target: int, priority: Priority, rule: str, required: float) -> PlannedAction:
        return PlannedAction(
            model_id, state.region, kind, state.instances, target, priority, rule, settings.policy.name, tier,
            state.utilization, state.predicted_rph, state.confidence,
            {"required": round(required, 2), "capacity_rph": round(settings.requests_per_instance_hour, 1)},
        )  # fmt: skip

    required = state.predicted_rph / settings.requests_per_instance_hour
    floor = min_instances(tier, state.region)
    if state.instances < floor:
        priority: Priority = "high" if tier is Tier.HOT else "medium"
        return action(ActionKind.PRELOAD, floor, priority, f"tier_{tier}", required)
    if state.instances == 0:
        preload = preload_priority(state.next_hour_requests, state.confidence)
        if preload is None:
            return None
        target = min(settings.max_instances, max(1, math.ceil(required)))
        return action(ActionKind.PRELOAD, target, preload, "predictive_preload", required)
    if floor == 0 and idle_for_unload(state.last_request_at, state.loaded_since, now, settings.cold_idle):
        return action(ActionKind.UNLOAD, 0, "low", "cold_idle", required)
    inputs = CapacityInputs(
        state.instances, state.predicted_rph, state.confidence, state.utilization,
        settings.requests_per_instance_hour, max(1, floor), settings.max_instances, state.pressure,
        state.signal_change,
    )  # fmt: skip
    decision = decide(settings.policy, inputs)
    if decision is None:
        return None
    up = decision.target > state.instances
    kind = ActionKind.SCALE_UP if up else ActionKind.SCALE_DOWN
    planned = action(kind, decision.target, "high" if up else "low", decision.rule, decision.required)
    if state.pressure != 0 and state.signal_change is not None:  # the signal's size, signed as the monitor sent it
        signed = round(state.signal_change if state.pressure > 0 else -state.signal_change, 4)
        planned = replace(planned, extra={**planned.extra, "signal_change": signed})
    return planned


def cold_start(model_id: str, region: str, instances: int, pending: bool, policy: str) -> PlannedAction | None:
    """A model with waiting requests and no instance in the region: preload one now, high priority."""
    if instances > 0 or pending:
        return None
    return PlannedAction(model_id, region, ActionKind.PRELOAD, 0, 1, "high", "cold_start", policy, Tier.COLD)
