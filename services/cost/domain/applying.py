"""What applying a recommendation asks for: capacity changes for the allocator, scaling for models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.events import ActionKind, CapacityChangeRequested, Event, ScalingActionRequested


@dataclass(frozen=True)
class RecommendationRow:
    """A stored recommendation, as much of it as applying it needs."""

    recommendation_id: str
    kind: str
    region: str | None
    gpu_type: str | None
    model_id: str | None
    action: dict[str, Any]
    evidence: dict[str, Any]
    status: str = "open"  # open | superseded | withdrawn | applied
    applied_request: list[dict[str, Any]] | None = None  # the requests sent when it was applied


def _changes(rec: RecommendationRow) -> dict[str, int]:
    """GPUs to add or release per pricing class, from the recommendation's action."""
    action = rec.action
    if rec.kind in ("spot", "reserved"):
        convert = action["convert"]
        return {convert["from"]: -int(convert["gpus"]), convert["to"]: int(convert["gpus"])}
    if rec.kind == "rightsize":
        return {cls: -int(n) for cls, n in action["release"].items() if n}
    now = rec.evidence["gpus"]  # capacity_mix: from today's counts to the mix's peak hour
    wanted = {"reserved": action["reserved"], "on_demand": action["on_demand_max"], "spot": action["spot_max"]}
    return {cls: int(wanted[cls]) - int(now[cls]) for cls in wanted if int(wanted[cls]) != int(now[cls])}


def _region_actions(rec: RecommendationRow, request_id: str, source: str, now: datetime) -> list[Event]:
    current: dict[str, int] = rec.evidence["current"]["gpus"]
    target: dict[str, int] = rec.action["gpus"]
    events: list[Event] = []
    for region in sorted(set(current) | set(target)):
        have, want = int(current.get(region, 0)), int(target.get(region, 0))
        if have == want:
            continue
        events.append(
            ScalingActionRequested(
                source=source,
                occurred_at=now,
                action_id=f"{request_id}-{region}",
                model_id=str(rec.model_id),
                region=region,
                kind=ActionKind.SCALE_UP if want > have else ActionKind.SCALE_DOWN,
                current_instances=have,
                target_instances=want,
                reason=f"operator applied cost recommendation {rec.recommendation_id}",
            )
        )
    return events


def requests_for(rec: RecommendationRow, request_id: str, source: str, now: datetime) -> list[Event]:
    """The requests a recommendation stands for (one per region for a regional plan)."""
    if rec.kind == "region_plan":
        return _region_actions(rec, request_id, source, now)
    return [
        CapacityChangeRequested(
            source=source,
            occurred_at=now,
            request_id=request_id,
            recommendation_id=rec.recommendation_id,
            region=str(rec.region),
            gpu_type=str(rec.gpu_type),
            changes=_changes(rec),  # type: ignore[arg-type]  # keys are the pricing classes
            commitment_months=rec.evidence.get("commitment_months") if rec.kind == "reserved" else None,
            reason=f"operator applied cost recommendation {rec.recommendation_id}",
        )
    ]
