"""Prices, cost reports and recommendations, and the capacity changes operators apply."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import Event


class GpuPrice(BaseModel):
    model_config = ConfigDict(frozen=True)

    region: str
    gpu_type: str
    on_demand_per_hour: float = Field(ge=0.0)
    spot_per_hour: float = Field(ge=0.0)
    reserved_per_hour: float = Field(ge=0.0)


class PricesPublished(Event):
    """The cost service's current price list (the monitor derives cost per token from it)."""

    type: Literal["prices_published"] = "prices_published"
    prices: list[GpuPrice]


class CostRecommended(Event):
    """A change that would cost less; applying it is an operator's decision."""

    type: Literal["cost_recommended"] = "cost_recommended"
    recommendation_id: str
    kind: Literal["spot", "reserved", "rightsize", "capacity_mix", "region_plan"]
    region: str | None = None
    gpu_type: str | None = None
    model_id: str | None = None
    summary: str
    savings_per_month: float
    evidence: dict[str, Any] = Field(default_factory=dict)


class CostReported(Event):
    """The fleet's cost now: per hour in all and by model, and per 1,000 tokens."""

    type: Literal["cost_reported"] = "cost_reported"
    total_per_hour: float
    by_model_per_hour: dict[str, float] = Field(default_factory=dict)
    per_1k_tokens: dict[str, float] = Field(default_factory=dict)
    report_id: str | None = None
    trigger: Literal["schedule", "on_demand"] = "schedule"
    requested_by: str | None = Field(default=None, description="request_id of the CostReportRequested it answers")
    by_region_per_hour: dict[str, float] = Field(default_factory=dict)
    by_gpu_type_per_hour: dict[str, float] = Field(default_factory=dict)
    by_pricing_class_per_hour: dict[str, float] = Field(default_factory=dict)
    servers: int = Field(default=0, ge=0, description="servers in the fleet snapshot the report prices")
    gpus: int = Field(default=0, ge=0)
    capacity_by_pool: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="region/gpu_type -> GPUs per pricing class, for pools an applied capacity change set",
    )
    committed_per_hour: float = Field(
        default=0.0, ge=0.0, description="reserved GPUs of those pools x the reserved rate: paid whether used or not"
    )


class CostReportRequested(Event):
    """An operator asks the cost service for a report now (the answer is a CostReported)."""

    type: Literal["cost_report_requested"] = "cost_report_requested"
    request_id: str = Field(min_length=1, max_length=200)


class CapacityChangeRequested(Event):
    """An operator applied a cost recommendation: change a pool's GPUs per pricing class."""

    type: Literal["capacity_change_requested"] = "capacity_change_requested"
    request_id: str
    recommendation_id: str
    region: str
    gpu_type: str
    changes: dict[Literal["on_demand", "spot", "reserved"], int] = Field(
        description="GPUs to add (positive) or release (negative) per pricing class"
    )
    commitment_months: int | None = Field(default=None, description="for reserved GPUs bought")
    reason: str
