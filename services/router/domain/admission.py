"""What happens to a request on arrival: batch it, hold it for a cold start, or reject it at once.

Kafka is the router's queue: a full router stops fetching (backpressure in the shell) rather than
rejecting. A request is rejected only for what waiting cannot fix: it is invalid for its model,
its deadline has passed or cannot be met at the measured service rate, its model cannot come, or
its producer asked to fail fast when the model's queue is full.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class ModelLoad:
    """What admission knows of the request's model right now."""

    queued: int  # requests of the model in the router: open batches, held, in flight
    known: bool  # a server has it (healthy or not)
    rate: float | None = None  # measured rows/s served; None until measured
    max_tokens: int | None = None  # the model's limit, when known
    held_models: int = 0  # distinct models waiting for a cold start
    held: bool = False  # this model already waits for one


@dataclass(frozen=True)
class AdmissionLimits:
    """The router's admission settings."""

    max_queue_per_model: int
    cold_start_models: tuple[str, ...]
    max_cold_start_models: int
    # Under overload the lowest priorities go first: a request below `shed_below_priority` (batch
    # traffic) is rejected `over capacity` once its model has `shed_queue_per_model` queued, long
    # before interactive requests wait or miss deadlines; its producer sends it again later.
    shed_below_priority: int = 0
    shed_queue_per_model: int = 500


def can_cold_start(model_id: str, cold_start_models: tuple[str, ...] | list[str]) -> bool:
    """True when the fleet may be asked to place the model ("*": any, the allocator decides)."""
    return ANY_MODEL in cold_start_models or model_id in cold_start_models


def admit(request: Pending, now: float, load: ModelLoad, limits: AdmissionLimits) -> Admission:
    """Decide on arrival."""
    model = request.model_id
    if request.expired(now):
        return Admission(Verdict.REJECT, "deadline passed before the request was routed")
    if load.max_tokens is not None and request.max_tokens > load.max_tokens:
        return Admission(
            Verdict.REJECT, f"max_tokens {request.max_tokens} exceeds {model}'s limit of {load.max_tokens}"
        )
    if request.fail_fast and load.queued >= limits.max_queue_per_model:
        return Admission(
            Verdict.REJECT,
            f"over capacity: {load.queued} requests for {model} queued (limit {limits.max_queue_per_model})",
        )
    if request.priority < limits.shed_below_priority and load.queued >= limits.shed_queue_per_model:
        return Admission(
            Verdict.REJECT,
            f"over capacity: priority {request.priority} shed with {load.queued} requests for {model} queued "
            f"(limit {limits.shed_queue_per_model} below priority {limits.shed_below_priority})",
        )
    if request.deadline is not None and load.rate:
        wait_s = load.queued / load.rate
        if now + wait_s > request.deadline:
            return Admission(
                Verdict.REJECT,
                f"deadline cannot be met: {load.queued} requests for {model} ahead, served at {load.rate:.1f}/s",
            )
    if load.known:
        return Admission(Verdict.BATCH)
    if not can_cold_start(model, limits.cold_start_models):
        return Admission(Verdict.REJECT, f"unknown model: no server has {model} and it cannot be cold-started")
    if not load.held and load.held_models >= limits.max_cold_start_models:
        return Admission(
            Verdict.REJECT, f"unknown model: {load.held_models} models already wait for a server (the router's limit)"
        )
    return Admission(Verdict.HOLD)


@dataclass
class ServiceRate:
    """Rows served per second per model, over a sliding window (for deadline estimates).

    Asked once per request, so it keeps a running total instead of summing its window.
    """

    window_s: float = 10.0
    _served: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    _totals: dict[str, int] = field(default_factory=dict)

    def record(self, model_id: str, rows: int, now: float) -> None:
        """A batch of `rows` finished."""
        served = self._served.setdefault(model_id, deque())
        served.append((now, rows))
        self._totals[model_id] = self._totals.get(model_id, 0) + rows
        while served and served[0][0] < now - self.window_s:
            self._totals[model_id] -= served.popleft()[1]

    def rate(self, model_id: str, now: float) -> float | None:
        """Rows/s over the window; None with less than a second of history."""
        served = self._served.get(model_id)
        if not served or now - served[0][0] < 1.0:
            return None
        return self._totals[model_id] / max(now - served[0][0], 1.0)

    def forget_idle(self, now: float) -> None:
        """Drop models with nothing served in the window (bounds memory under many model ids)."""
        for model_id in [m for m, s in self._served.items() if not s or s[-1][0] < now - self.window_s]:
            del self._served[model_id]
            self._totals.pop(model_id, None)


def reply_topic_refusal(topic: str, prefixes: list[str], allowed: set[str], reserved: set[str]) -> str | None:
    """Why results may not go to `topic` (None when they may): internal, control and unlisted topics."""
    if topic.startswith("__") or topic in reserved:
        return f"reply_topic {topic!r} is an internal or control topic"
    if topic in allowed or any(topic.startswith(p) for p in prefixes):
        return None
    return f"reply_topic {topic!r} is not allowed (allowed prefixes: {', '.join(prefixes) or 'none'})"
