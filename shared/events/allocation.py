"""What the allocator did: servers up and released, models loaded and unloaded, failures."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.events.envelope import Event


class ServerAllocated(Event):
    """A Triton server is up and answering; keyed by model id when it was started for one."""

    type: Literal["server_allocated"] = "server_allocated"
    server_id: str
    endpoint: str = Field(description="Triton HTTP address, host:port")
    metrics_url: str
    region: str
    gpu_type: str
    gpu_count: int = 1
    cost_per_hour: float = Field(ge=0.0)
    pricing_class: Literal["on_demand", "spot", "reserved"] = "on_demand"
    capacity: int = Field(default=1, ge=1, description="batches it serves at once")
    action_id: str | None = None


class _ModelPlacementChanged(Event):
    server_id: str
    model_id: str
    region: str
    action_id: str | None = None


class ModelLoaded(_ModelPlacementChanged):
    """A model is loaded on a server and ready to serve."""

    type: Literal["model_loaded"] = "model_loaded"
    triton_model: str | None = Field(
        default=None, description="the model's name in the server's Triton repository; None: the model id"
    )
    instances: int | None = Field(default=None, ge=0, description="instances of the model on the server now")


class ModelUnloaded(_ModelPlacementChanged):
    """A model is no longer served by a server."""

    type: Literal["model_unloaded"] = "model_unloaded"


class ServerReleased(Event):
    type: Literal["server_released"] = "server_released"
    server_id: str
    region: str
    action_id: str | None = None


class AllocationFailed(Event):
    type: Literal["allocation_failed"] = "allocation_failed"
    model_id: str
    region: str
    reason: str
    action_id: str | None = None
