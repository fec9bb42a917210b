"""Scaling signals for the scaler: hints with a suggested change, never actions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.monitor.domain.rules import Direction, Metric
from shared.events import SignalKind


@dataclass(frozen=True)
class SignalRule:
    """When a value crosses `threshold`, suggest `kind`; `target` is the value to bring it back to."""

    kind: SignalKind
    metric: Metric
    direction: Direction
    threshold: float
    factor: float
    target: float | None = None


@dataclass(frozen=True)
class Signal:
    kind: SignalKind
    metric: Metric
    value: float
    threshold: float
    factor: float
    target: float | None


# The signal rules. Thresholds are strict (> and <): a value on the line asks for nothing.
DEFAULT_SIGNAL_RULES: tuple[SignalRule, ...] = (
    SignalRule(SignalKind.SCALE_UP, Metric.GPU_UTILIZATION, Direction.ABOVE, 0.85, 0.25),
    SignalRule(SignalKind.SCALE_DOWN, Metric.GPU_UTILIZATION, Direction.BELOW, 0.25, -0.20),
    SignalRule(SignalKind.ADD_SERVERS, Metric.LATENCY_P95_MS, Direction.ABOVE, 2500, 0.25, target=2000),
    SignalRule(SignalKind.ADD_INSTANCES, Metric.QUEUE_DEPTH, Direction.ABOVE, 50, 0.5),
)

MAX_FACTOR = 4.0  # never suggest more than five times the capacity in one step


def _crossed(rule: SignalRule, value: float) -> bool:
    return value > rule.threshold if rule.direction is Direction.ABOVE else value < rule.threshold


def factor_for(rule: SignalRule, value: float) -> float:
    """The suggested relative change: to reach `target` when the rule has one, else the rule's factor.

    Latency is taken as inversely proportional to capacity, so p95 4,000 ms with a 2,000 ms target
    asks for +100%; never less than the rule's own factor, never more than MAX_FACTOR.
    """
    if rule.target is None or rule.target <= 0:
        return rule.factor
    return min(MAX_FACTOR, max(rule.factor, value / rule.target - 1.0))


def signals_for(
    metric: Metric, value: float | None, rules: tuple[SignalRule, ...] = DEFAULT_SIGNAL_RULES
) -> list[Signal]:
    """Every signal the value asks for."""
    if value is None:
        return []
    return [
        Signal(r.kind, metric, value, r.threshold, factor_for(r, value), r.target)
        for r in rules
        if r.metric is metric and _crossed(r, value)
    ]


def due(last_raised_at: datetime | None, now: datetime, cooldown_s: float) -> bool:
    """True when a signal for the same kind and scope may be raised again (the scaler needs time to act)."""
    return last_raised_at is None or (now - last_raised_at).total_seconds() >= cooldown_s
