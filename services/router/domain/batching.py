"""Batch formation: group compatible requests, close a batch when full, over budget or due.

Requests are grouped by (model, max_tokens bucket of 100, temperature, top_p); within a group
rows are ordered by priority (higher first) then arrival. A group's batch closes when it is full,
when the next request would exceed the model's token budget, when its oldest request has waited
the strategy's maximum, or early when a member's deadline would otherwise pass. Time is passed
in, so the shell's timer (not the next arrival) decides when `due` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from services.router.domain.requests import Pending


class BatchStrategy(StrEnum):
    """How long a model's batches may wait and how large they may grow (chosen per model)."""

    LATENCY_OPTIMIZED = "latency_optimized"
    THROUGHPUT_OPTIMIZED = "throughput_optimized"
    COST_OPTIMIZED = "cost_optimized"


@dataclass(frozen=True)
class BatchLimits:
    """When a batch must close."""

    max_size: int
    max_wait_s: float
    token_budget: int


SIZE_AND_WAIT: dict[BatchStrategy, tuple[int, float]] = {
    BatchStrategy.LATENCY_OPTIMIZED: (8, 0.050),
    BatchStrategy.THROUGHPUT_OPTIMIZED: (32, 0.200),
    BatchStrategy.COST_OPTIMIZED: (64, 0.500),
}


def limits_for(strategy: BatchStrategy, token_budget: int) -> BatchLimits:
    """The limits of a batching strategy with the model's token budget."""
    size, wait = SIZE_AND_WAIT[strategy]
    return BatchLimits(max_size=size, max_wait_s=wait, token_budget=token_budget)


GroupKey = tuple[str, int, float, float]


def group_key(request: Pending) -> GroupKey:
    """Requests that can share one Triton call: same model, max_tokens bucket, sampling settings."""
    return (request.model_id, request.max_tokens // 100 * 100, request.temperature, request.top_p)


@dataclass(frozen=True)
class Batch:
    """Closed batch: rows in priority-then-arrival order, and why it closed."""

    key: GroupKey
    requests: tuple[Pending, ...]
    reason: str
    closed_at: float

    @property
    def model_id(self) -> str:
        """The model every row asks for."""
        return self.key[0]


@dataclass
class _Group:
    limits: BatchLimits
    opened_at: float
    requests: list[Pending] = field(default_factory=list)
    tokens: int = 0
    earliest_deadline: float | None = None

    def close_at(self, deadline_margin_s: float) -> float:
        """When the timer must close this batch: its wait, or a member's deadline minus the margin."""
        due = self.opened_at + self.limits.max_wait_s
        if self.earliest_deadline is not None:
            due = min(due, self.earliest_deadline - deadline_margin_s)
        return due


class Batcher:
    """Open batches per group key. Not thread-safe; the shell owns one per process."""

    def __init__(self, limits: Callable[[str], BatchLimits], deadline_margin_s: float = 0.0) -> None:
        self._limits = limits
        self._margin = deadline_margin_s
        self._groups: dict[GroupKey, _Group] = {}
        self._depth: dict[str, int] = {}

    def add(self, request: Pending, now: float) -> list[Batch]:
        """Put a request in its group; return the batches this closed (0, 1 or 2)."""
        key = group_key(request)
        closed: list[Batch] = []
        group = self._groups.get(key)
        if group is not None and group.tokens + request.tokens > group.limits.token_budget:
            closed.append(self._close(key, "tokens", now))
            group = None
        if group is None:
            group = self._groups[key] = _Group(self._limits(request.model_id), opened_at=now)
        group.requests.append(request)
        group.tokens += request.tokens
        if request.deadline is not None:
            group.earliest_deadline = min(group.earliest_deadline or request.deadline, request.deadline)
        self._depth[request.model_id] = self._depth.get(request.model_id, 0) + 1
        if len(group.requests) >= group.limits.max_size:
            closed.append(self._close(key, "full", now))
        return closed

    def due(self, now: float) -> list[Batch]:
        """Close every batch whose wait (or a member's deadline margin) is up."""
        keys = [k for k, g in self._groups.items() if now >= g.close_at(self._margin)]
        return [self._close(k, self._due_reason(self._groups[k], now), now) for k in keys]

    def next_due(self) -> float | None:
        """When the next batch must close by the timer; None when nothing waits."""
        return min((g.close_at(self._margin) for g in self._groups.values()), default=None)

    def drain(self, now: float) -> list[Batch]:
        """Close every open batch (shutdown)."""
        return [self._close(k, "drain", now) for k in list(self._groups)]

    def depth(self, model_id: str) -> int:
        """Requests of the model waiting in open batches."""
        return self._depth.get(model_id, 0)

    def _due_reason(self, group: _Group, now: float) -> str:
        return "timer" if now >= group.opened_at + group.limits.max_wait_s else "deadline"

    def _close(self, key: GroupKey, reason: str, now: float) -> Batch:
        group = self._groups.pop(key)
        self._depth[key[0]] -= len(group.requests)
        rows = sorted(group.requests, key=lambda r: (-r.priority, r.seq))
        return Batch(key=key, requests=tuple(rows), reason=reason, closed_at=now)
