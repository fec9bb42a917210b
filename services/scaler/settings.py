"""The scaler's settings (`LLMFLEET_SCALER_*`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.scaler.domain.backoff import BackoffPolicy
from services.scaler.domain.policy import PolicyName
from services.scaler.domain.series import Seasons
from shared.performance import LATENCY_TARGET_MS, MAX_BATCH, OUTPUT_TOKENS, PROMPT_TOKENS
from shared.settings import ServiceSettings

# The fleet file the allocator is seeded from: the scaler reads each model's size, GPU and target.
DEFAULT_FLEET = Path(__file__).resolve().parents[1] / "allocator" / "fleet.yaml"


class ScalerSettings(ServiceSettings):
    """Settings of the scaler service (times in seconds; seasonal periods in buckets)."""

    model_config = SettingsConfigDict(env_prefix="LLMFLEET_SCALER_", extra="ignore", frozen=True)

    service_name: str = Field(
        default="scaler", description="the service's name: its schema, role and default consumer group"
    )
    policy: PolicyName = Field(
        default=PolicyName.CONSERVATIVE,
        description="aggressive, conservative or cost_optimized (thresholds, confidence, factors)",
    )
    requests_per_instance_hour: float | None = Field(
        default=None,
        gt=0,
        description="what one instance serves per hour, for every model; unset: per model from the GPU performance"
        " model (fleet_config; 1000 for models it does not know)",
    )
    fleet_config: Path = Field(
        default=DEFAULT_FLEET, description="the allocator's fleet file: each model's size, preferred GPU and target"
    )
    reference_prompt_tokens: int = Field(default=PROMPT_TOKENS, ge=1, description="the request capacity is counted in")
    reference_output_tokens: int = Field(default=OUTPUT_TOKENS, ge=1, description="the request capacity is counted in")
    latency_target_ms: float = Field(
        default=LATENCY_TARGET_MS, gt=0, description="capacity is within it, for models without latency_target_ms"
    )
    max_batch: int = Field(default=MAX_BATCH, ge=1, description="sequences one instance runs at once (capacity)")
    bucket_s: int = Field(default=3600, ge=1, description="history bucket; a time-compressed replay uses 10-60 s")
    day_buckets: int = Field(default=0, ge=0, description="daily period in buckets; 0: 86400 / bucket_s")
    week_buckets: int = Field(default=0, ge=0, description="weekly period in buckets; 0: 7 days")
    history_buckets: int = Field(default=5 * 168, ge=8, description="buckets of history a forecast reads")
    horizon_buckets: int = Field(default=24, ge=1, le=1000, description="forecast horizon in buckets")
    evaluation_interval_s: float = Field(
        default=60.0, gt=0, description="how often forecasts and scaling decisions are made"
    )
    cooldown_s: float = Field(default=300.0, ge=0, description="per model and region, after any action")
    action_timeout_s: float = Field(default=600.0, gt=0, description="unconfirmed longer: ScalingActionOverdue")
    cold_idle_s: float = Field(default=1800.0, gt=0, description="a cold model idle this long is unloaded")
    utilization_max_age_s: float = Field(default=300.0, gt=0, description="older utilisation reports are ignored")
    signal_max_age_s: float = Field(default=300.0, gt=0, description="older monitor signals are ignored")
    max_instances: int = Field(default=64, ge=1, description="upper bound on a model's instances per region")
    compaction_age_s: float = Field(default=14 * 86400.0, gt=0, description="raw windows older than this are merged")
    compaction_bucket_s: int = Field(default=3600, ge=1, description="bucket that aged history is merged into")
    compaction_interval_s: float = Field(default=3600.0, gt=0, description="how often aged history is compacted")
    outbox_poll_s: float = Field(default=1.0, gt=0, description="how often the outbox relay looks for unsent events")
    refusal_backoff_s: float = Field(
        default=30.0, ge=0, description="after the k-th refusal in a row by the allocator, no capacity ask for the"
        " model in that region for refusal_backoff_s * 2^(k-1) (on top of the cooldown)",
    )  # fmt: skip
    refusal_backoff_max_s: float = Field(
        default=1800.0, ge=0, description="the longest wait after refusals, however many in a row"
    )
    refusal_alert_after: int = Field(
        default=3, ge=1, description="refusals in a row for a model and region that fire 'capacity exhausted'"
    )

    @property
    def backoff(self) -> BackoffPolicy:
        """How the scaler backs off from, and alerts on, a model and region the allocator refuses."""
        return BackoffPolicy(
            timedelta(seconds=self.refusal_backoff_s),
            timedelta(seconds=self.refusal_backoff_max_s),
            self.refusal_alert_after,
        )

    @property
    def seasons(self) -> Seasons:
        """The seasonal periods in buckets."""
        return Seasons.for_bucket(self.bucket_s, self.day_buckets, self.week_buckets)
