"""Capacity decisions: forecasts, scaling actions, cold-start requests."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from shared.events.envelope import Event


class DemandForecasted(Event):
    """The scaler's forecast for one model (and region), requests per hour over the horizon."""

    type: Literal["demand_forecasted"] = "demand_forecasted"
    model_id: str
    region: str | None = None
    horizon_start: datetime
    requests_per_hour: list[float]
    confidence: float = Field(ge=0.0, le=1.0)
    predictors: dict[str, float] = Field(default_factory=dict)
    bucket_s: int | None = Field(
        default=None, ge=1, description="seconds each requests_per_hour entry covers; None: one hour"
    )
    tier: Literal["hot", "warm", "cold"] | None = None


class ActionKind(StrEnum):
    SCALE_UP = "scale_up"
    SCALE_DOWN = "scale_down"
    PRELOAD = "preload"
    UNLOAD = "unload"


class ScalingActionRequested(Event):
    """The scaler's decision: bring one model in one region to `target_instances`."""

    type: Literal["scaling_action_requested"] = "scaling_action_requested"
    action_id: str
    model_id: str
    region: str
    kind: ActionKind
    current_instances: int = Field(ge=0)
    target_instances: int = Field(ge=0)
    priority: Literal["low", "medium", "high"] = "medium"
    reason: str
    rule: str | None = Field(default=None, description="the rule that fired, e.g. utilization_high")
    policy: str | None = None
    inputs: dict[str, float] = Field(default_factory=dict, description="utilization, forecast_rph, confidence...")


class ScalingActionOverdue(Event):
    """An action the allocator has not confirmed in time (the monitor alerts on it)."""

    type: Literal["scaling_action_overdue"] = "scaling_action_overdue"
    action_id: str
    model_id: str
    region: str
    requested_at: datetime
    waited_s: float


class ModelRequested(Event):
    """The router has requests for a model no server holds (cold start)."""

    type: Literal["model_requested"] = "model_requested"
    model_id: str
    region: str
    pending_requests: int = Field(ge=1)
