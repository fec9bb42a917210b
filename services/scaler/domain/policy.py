"""Scaling policies: when one model in one region should get more or fewer instances.

Hysteresis is built in: scaling up needs required capacity above 1.2x current (or high
utilisation), scaling down needs it below 0.8x current and low utilisation, so a steady load
sits in the dead band between the two and capacity does not flap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from services.scaler.domain.signals import down_target, up_target

UP_BAND = 1.2
DOWN_BAND = 0.8


class PolicyName(StrEnum):
    """The scaling policies settings can choose."""

    AGGRESSIVE = "aggressive"
    CONSERVATIVE = "conservative"
    COST_OPTIMIZED = "cost_optimized"


@dataclass(frozen=True)
class Policy:
    """Thresholds and factors of one scaling policy."""

    name: PolicyName
    scale_up_utilization: float
    scale_down_utilization: float
    min_confidence: float
    up_factor: float
    down_factor: float


POLICIES: dict[PolicyName, Policy] = {
    PolicyName.AGGRESSIVE: Policy(PolicyName.AGGRESSIVE, 0.7, 0.3, 0.6, 2.0, 0.5),
    PolicyName.CONSERVATIVE: Policy(PolicyName.CONSERVATIVE, 0.8, 0.2, 0.8, 1.5, 0.7),
    PolicyName.COST_OPTIMIZED: Policy(PolicyName.COST_OPTIMIZED, 0.85, 0.15, 0.9, 1.3, 0.6),
}


@dataclass(frozen=True)
class CapacityInputs:
    """What the decision for one model in one region looks at."""

    current: int
    predicted_rph: float
    confidence: float
    utilization: float | None
    requests_per_instance_hour: float
    min_instances: int = 1
    max_instances: int = 64
    pressure: int = 0  # +1: the monitor signalled scale-up, -1: scale-down, 0: nothing recent
    signal_change: float | None = None  # the size of that signal (0.25: +25% / -25%); None: the policy's factor


@dataclass(frozen=True)
class CapacityDecision:
    """A target instance count and the rule that set it."""

    target: int
    rule: str
    required: float


def required_capacity(predicted_rph: float, requests_per_instance_hour: float) -> float:
    """Instances the predicted demand needs (fractional; the caller rounds)."""
    return predicted_rph / requests_per_instance_hour


def decide(policy: Policy, inputs: CapacityInputs) -> CapacityDecision | None:
    """Scale up, scale down, or nothing (None) for a region that has at least one instance.

    Up: the largest of ceil(required), the policy's ceil(current x up_factor) when utilisation or
    the forecast asks, and a monitor scale-up signal's own size, ceil(current x (1 + change)) and at
    least +1 (domain/signals.py; a signal without a size takes the policy's factor, as before).
    Down: the smallest of the policy's floor(current x down_factor) when utilisation is low and a
    scale-down signal's floor(current x (1 - change)), never below the floor (the minimum, the
    forecast's need, and what the same load would need to stay under the scale-up threshold).
    """
    current = inputs.current
    if current < 1:
        return None  # placing a first instance is a preload or a cold start, not a scaling step
    required = required_capacity(inputs.predicted_rph, inputs.requests_per_instance_hour)
    utilization = inputs.utilization
    change = inputs.signal_change
    measured_hot = utilization is not None and utilization > policy.scale_up_utilization
    hot = measured_hot or inputs.pressure > 0
    # Measured overload is acted on whatever the forecast's confidence (the seed gated it too, so
    # a model without history stayed saturated); the confidence gates what rests on the forecast.
    if inputs.confidence < policy.min_confidence and not hot:
        return None
    forecast_high = inputs.confidence >= policy.min_confidence and required > UP_BAND * current
    if hot or forecast_high:
        wanted = [math.ceil(required)]
        if measured_hot or forecast_high or change is None:
            wanted.append(math.ceil(current * policy.up_factor))
        if inputs.pressure > 0 and change is not None:
            wanted.append(up_target(current, change))
        target = min(inputs.max_instances, max(wanted))
        rule = "utilization_high" if hot else "forecast_above_capacity"
        return CapacityDecision(target, rule, required) if target > current else None
    measured_cold = utilization is not None and utilization < policy.scale_down_utilization
    cold = measured_cold or inputs.pressure < 0
    if cold and inputs.pressure <= 0 and required < DOWN_BAND * current:
        # Never so low that the same load would cross the scale-up threshold: that would flap.
        projected = math.ceil(round((utilization or 0.0) * current / policy.scale_up_utilization, 9))
        floor = max(inputs.min_instances, math.ceil(required), projected)
        cuts = []
        if measured_cold or change is None:
            cuts.append(math.floor(current * policy.down_factor))
        if inputs.pressure < 0 and change is not None:
            cuts.append(down_target(current, change))
        target = max(floor, min(cuts))
        return CapacityDecision(target, "utilization_low", required) if target < current else None
    return None
