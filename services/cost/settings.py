"""The cost service's settings (`LLMFLEET_COST_*`)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.cost.domain.cycle import Params
from services.cost.domain.rules import Thresholds
from shared.settings import ServiceSettings


class RecommendationSource(StrEnum):
    """Which recommenders run each cycle (region plans always do)."""

    RULES = "rules"
    OPTIMAL = "optimal"
    BOTH = "both"


class CostSettings(ServiceSettings):
    """Settings of the cost service."""

    model_config = SettingsConfigDict(env_prefix="LLMFLEET_COST_", extra="ignore", frozen=True)

    service_name: str = Field(
        default="cost", description="the service's name: its schema, role and default consumer group"
    )
    report_interval_s: float = Field(default=300.0, gt=0, description="scheduled report + recommendation cycle")
    demand_lookback_s: float = Field(default=3600.0, gt=0, description="demand windows priced per 1k tokens")
    recommendations: RecommendationSource = Field(
        default=RecommendationSource.BOTH, description="which recommendations to publish: rules, optimal or both"
    )
    latency_requirement_ms: float = Field(default=2000.0, gt=0, description="average latency a regional plan must meet")
    spot_interruption_tolerance: float = Field(default=0.7, ge=0.0, le=1.0, description="max spot share per hour")
    requests_per_gpu_hour: float = Field(default=3600.0, gt=0, description="when servers report no throughput")
    target_utilization: float = Field(
        default=0.8, gt=0.0, le=1.0, description="utilisation the optimal mix sizes capacity for"
    )
    serving_latency_ms: float = Field(default=800.0, ge=0, description="when the router reported no latency")
    min_mix_savings_per_month: float = Field(
        default=100.0, ge=0, description="smallest saving worth a capacity-mix recommendation ($/month)"
    )
    spot_above_utilization: float = Field(
        default=0.6, description="recommend more spot where utilisation is above this"
    )
    spot_target_share: float = Field(default=0.7, description="spot share the spot rule recommends")
    reserved_above_utilization: float = Field(
        default=0.8, description="recommend reserved capacity where utilisation is above this"
    )
    reserved_target_share: float = Field(
        default=0.6, description="share of the pool the reserved rule recommends reserving"
    )
    reserved_commitment_months: int = Field(default=12, description="commitment of reserved capacity, months")
    rightsize_below_utilization: float = Field(
        default=0.3, description="recommend downsizing where utilisation is below this"
    )
    rightsize_to_share: float = Field(default=0.7, description="share of the pool the right-size rule keeps")

    def params(self) -> Params:
        """The evaluation knobs these settings describe."""
        return Params(
            thresholds=Thresholds(
                self.spot_above_utilization,
                self.spot_target_share,
                self.reserved_above_utilization,
                self.reserved_target_share,
                self.reserved_commitment_months,
                self.rightsize_below_utilization,
                self.rightsize_to_share,
            ),
            spot_cap=self.spot_interruption_tolerance,
            requests_per_gpu_hour=self.requests_per_gpu_hour,
            target_utilization=self.target_utilization,
            serving_latency_ms=self.serving_latency_ms,
            latency_requirement_ms=self.latency_requirement_ms,
            min_mix_savings_per_month=self.min_mix_savings_per_month,
            use_rules=self.recommendations is not RecommendationSource.OPTIMAL,
            use_optimal=self.recommendations is not RecommendationSource.RULES,
        )
