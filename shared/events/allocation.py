"""What the allocator did: servers up and released, models loaded and unloaded, failures."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class SpotInterruptionNotice(Event):
    """The cloud takes a spot server back at `reclaim_at` (AWS gives 2 minutes, others 30 s or less).

    The router stops sending it new batches at once (in-flight ones finish); the allocator starts
    a replacement and stops the server once the replacement serves, or at `reclaim_at`.
    """

    type: Literal["spot_interruption_notice"] = "spot_interruption_notice"
    server_id: str
    region: str
    reclaim_at: datetime
    provider: str = Field(default="local", description="who gave notice: the local market, aws, gcp...")


class InstancesMoved(Event):
    """The re-plan moves a server's instances to a cheaper GPU type: the new server starts first.

    The old server is stopped once the new one serves (a `ServerReleased` and a `FleetRepaired`
    `moved` follow). `action` rather than `action_id`: no scaling action asked for it.
    """

    type: Literal["instances_moved"] = "instances_moved"
    model_id: str
    region: str
    from_server: str
    from_gpu_type: str
    to_server: str
    to_gpu_type: str
    quantisation: str
    instances: int
    saving_per_hour: float = Field(description="$/h saved once the old server is gone")
    action: str


class FleetRepaired(Event):
    """The allocator's reconciler found the records and the running fleet apart, and mended it.

    One event per repair, with the reason, for operators and audits; the state change itself
    (a server released, a model unloaded, an action failed) goes out as its own event too.
    `action` rather than `action_id`: a repair answers no scaling action, and consumers treat an
    event carrying `action_id` as that action's answer.
    """

    type: Literal["fleet_repaired"] = "fleet_repaired"
    repair: str = Field(
        description="what was mended: action_rolled_back, server_gone, server_stopped, orphan_stopped,"
        " placement_reloaded, placement_confirmed, placement_dropped, model_unloaded, gpus_returned,"
        " gpu_accounting_broken, server_retired, spot_reclaimed, moved, move_abandoned"
    )
    reason: str
    region: str | None = None
    server_id: str | None = None
    model_id: str | None = None
    action: str | None = Field(default=None, description="the scaling action the repair concerns")


PricingClassName = Literal["on_demand", "spot", "reserved"]


class RepricedServer(BaseModel):
    """A running server whose GPUs a capacity change moved to another pricing class."""

    model_config = ConfigDict(frozen=True)

    server_id: str
    pricing_class: PricingClassName
    cost_per_hour: float = Field(ge=0.0)


class CapacityChanged(Event):
    """The allocator carried out (or refused) a CapacityChangeRequested; keyed `region:gpu_type`.

    `gpus_by_class` is the pool's GPUs per pricing class afterwards (free or held by servers; not
    those held back). Servers whose GPUs changed class (a reserved commitment covering them) are in
    `repriced`; servers started later are priced by the class of the GPUs they take.
    """

    type: Literal["capacity_changed"] = "capacity_changed"
    request_id: str
    recommendation_id: str
    region: str
    gpu_type: str
    result: Literal["applied", "refused"]
    reason: str | None = None
    changes: dict[PricingClassName, int] = Field(
        default_factory=dict, description="GPUs of each class added (positive) or gone (negative)"
    )
    gpus_by_class: dict[PricingClassName, int] = Field(default_factory=dict)
    repriced: list[RepricedServer] = Field(default_factory=list)
    commitment_months: int | None = None


class CapacityAdded(Event):
    """The cluster's capacity provider delivered GPUs and they joined the pool (free); keyed `region:gpu_type`.

    `reason` is the rule that asked for them (the seed's autoscaling rules, or placements that did
    not fit); `gpus_by_class` is the pool's GPUs per pricing class afterwards.
    """

    type: Literal["capacity_added"] = "capacity_added"
    region: str
    gpu_type: str
    pricing_class: PricingClassName
    gpus: int = Field(ge=1)
    gpu_ids: list[str] = Field(default_factory=list)
    reason: str
    gpus_by_class: dict[PricingClassName, int] = Field(default_factory=dict)


class CapacityReleased(Event):
    """Free GPUs left the pool and went back to the provider; keyed `region:gpu_type`.

    Only free GPUs are ever released: capacity a running instance holds stays.
    """

    type: Literal["capacity_released"] = "capacity_released"
    region: str
    gpu_type: str
    gpus: int = Field(ge=1)
    gpu_ids: list[str] = Field(default_factory=list)
    reason: str
    gpus_by_class: dict[PricingClassName, int] = Field(default_factory=dict)
