"""What happens to a request on arrival: batch it, hold it for a cold start, or reject it at once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.router.domain.requests import Pending

ANY_MODEL = "*"


class Verdict(StrEnum):
    """What admission decided for a request."""

    BATCH = "batch"
    HOLD = "hold"
    REJECT = "reject"


@dataclass(frozen=True)
class Admission:
    """The verdict, with the reason when rejected."""

    verdict: Verdict
    reason: str | None = None


def can_cold_start(model_id: str, cold_start_models: list[str]) -> bool:
    """True when the fleet may be asked to place the model ("*": any, the allocator decides)."""
    return ANY_MODEL in cold_start_models or model_id in cold_start_models


def admit(
    request: Pending, now: float, queued: int, max_queue: int, model_known: bool, cold_start_models: list[str]
) -> Admission:
    """Decide on arrival; `queued` is the model's requests already in the router (waiting or in flight)."""
    if request.expired(now):
        return Admission(Verdict.REJECT, "deadline passed before the request was routed")
    if queued >= max_queue:
        return Admission(
            Verdict.REJECT, f"over capacity: {queued} requests for {request.model_id} queued (limit {max_queue})"
        )
    if model_known:
        return Admission(Verdict.BATCH)
    if can_cold_start(request.model_id, cold_start_models):
        return Admission(Verdict.HOLD)
    return Admission(Verdict.REJECT, f"unknown model: no server has {request.model_id} and it cannot be cold-started")
