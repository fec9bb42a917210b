"""Alert rules: what is watched, which way is bad, how long it must last, and the hysteresis band."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.events import Severity


class Metric(StrEnum):
    """The values rules watch; each is computed per scope (server, model+region, group...)."""

    GPU_UTILIZATION = "gpu_utilization"
    LATENCY_P95_MS = "latency_p95_ms"
    ERROR_RATE = "error_rate"
    COST_PER_TOKEN = "cost_per_token"  # noqa: S105 - a metric name, not a secret
    QUEUE_DEPTH = "queue_depth"
    SCRAPE_FAILURES = "scrape_failures"
    SCALING_ACTION_WAIT_S = "scaling_action_wait_s"
    CONSUMER_LAG = "consumer_lag"
    BUDGET_SPENT = "budget_spent"  # a tenant's month-to-date spend / its monthly budget (the gateway's figures)


class Direction(StrEnum):
    """ABOVE: values at or over the threshold are bad; BELOW: at or under."""

    ABOVE = "above"
    BELOW = "below"


@dataclass(frozen=True)
class AlertRule:
    """One row of the rules table."""

    name: str
    metric: Metric
    direction: Direction
    threshold: float
    severity: Severity
    for_s: float = 0.0
    hysteresis: float = 0.0
    enabled: bool = True


def breached(rule: AlertRule, value: float) -> bool:
    """True when `value` is on the bad side of the threshold (the threshold itself counts as bad)."""
    if rule.direction is Direction.ABOVE:
        return value >= rule.threshold
    return value <= rule.threshold


def cleared(rule: AlertRule, value: float) -> bool:
    """True when `value` is back past the hysteresis band, so a firing alert may resolve."""
    if rule.direction is Direction.ABOVE:
        return value < rule.threshold - rule.hysteresis
    return value > rule.threshold + rule.hysteresis


A, B, H, C, INFO = Direction.ABOVE, Direction.BELOW, Severity.HIGH, Severity.CRITICAL, Severity.INFO

# The thresholds; the migration seeds the same rows and operators change them there.
DEFAULT_RULES: tuple[AlertRule, ...] = (
    AlertRule("gpu_utilization_high", Metric.GPU_UTILIZATION, A, 0.9, H, for_s=300, hysteresis=0.05),
    AlertRule("gpu_utilization_low", Metric.GPU_UTILIZATION, B, 0.2, INFO, for_s=900, hysteresis=0.05),
    AlertRule("latency_p95_high", Metric.LATENCY_P95_MS, A, 3000, H, for_s=60, hysteresis=250),
    AlertRule("latency_p95_critical", Metric.LATENCY_P95_MS, A, 5000, C, for_s=60, hysteresis=250),
    AlertRule("error_rate_high", Metric.ERROR_RATE, A, 0.05, H, for_s=60, hysteresis=0.01),
    AlertRule("error_rate_critical", Metric.ERROR_RATE, A, 0.10, C, for_s=60, hysteresis=0.01),
    AlertRule("cost_per_token_high", Metric.COST_PER_TOKEN, A, 0.001, H, for_s=600, hysteresis=0.0001),
    AlertRule("cost_per_token_critical", Metric.COST_PER_TOKEN, A, 0.002, C, for_s=600, hysteresis=0.0001),
    AlertRule("queue_depth_high", Metric.QUEUE_DEPTH, A, 100, H, for_s=60, hysteresis=10),
    AlertRule("queue_depth_critical", Metric.QUEUE_DEPTH, A, 500, C, for_s=60, hysteresis=10),
    AlertRule("scaling_action_overdue", Metric.SCALING_ACTION_WAIT_S, A, 1, H),
)


# A tenant's monthly budget, as the issue asks: warn at 80%, critical at 100% (the gateway refuses
# from there). Constants, not rows: the thresholds are the product's, and the value is a fraction.
BUDGET_RULES: tuple[AlertRule, ...] = (
    AlertRule("tenant_budget_80", Metric.BUDGET_SPENT, A, 0.8, H),
    AlertRule("tenant_budget_100", Metric.BUDGET_SPENT, A, 1.0, C),
)


def control_plane_rules(target_down_after: int, lag_threshold: float) -> tuple[AlertRule, ...]:
    """Rules whose thresholds come from settings: a target down, a consumer group lagging."""
    return (
        AlertRule("scrape_target_down", Metric.SCRAPE_FAILURES, A, target_down_after, C),
        AlertRule(
            "consumer_lag_high", Metric.CONSUMER_LAG, A, lag_threshold, H, for_s=60, hysteresis=lag_threshold / 10
        ),
    )
