"""The scaler's settings (`LLMFLEET_SCALER_*`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class ScalerSettings(ServiceSettings):
    """Settings of the scaler service."""

    model_config = SettingsConfigDict(env_prefix="LLMFLEET_SCALER_", extra="ignore", frozen=True)

    service_name: str = "scaler"
