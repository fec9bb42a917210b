"""What the allocator has on record about actions, servers and placements (plain data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ActionRecord:
    """A scaling action as recorded."""

    action_id: str
    model_id: str
    region: str
    traceparent: str | None = None  # the W3C trace context it was requested in (its work continues that trace)


@dataclass(frozen=True)
class ServerRecord:
    """A server row: where it runs, on what, at what price."""

    server_id: str
    region: str
    gpu_type: str
    gpu_count: int
    cost_per_hour: float
    pricing_class: Literal["on_demand", "spot", "reserved"]


@dataclass(frozen=True)
class PlacementRecord:
    """A model on a server, with the server's address and state."""

    server_id: str
    model_id: str
    triton_model: str
    instances: int
    endpoint: str | None
    server_state: str


@dataclass(frozen=True)
class PendingSteps:
    """What an action still has to make real, from the rows it wrote."""

    starting: list[ServerRecord]
    stopping: list[ServerRecord]
    loading: list[PlacementRecord]
    unloading: list[PlacementRecord]
