"""Counting the hot path's outcomes: request and batch metrics, and the demand window the router reports."""

from __future__ import annotations

from typing import Any

from services.router.adapters.metrics import LabelBudget, RouterMetrics
from services.router.domain.batching import Batch
from services.router.domain.demand import DemandWindow
from services.router.domain.requests import Pending
from shared.events import ResultStatus, Timings


class Accounting:
    """Outcomes and batches into the metrics and the demand window, under a bounded set of model labels."""

    def __init__(self, metrics: RouterMetrics, demand: DemandWindow, labels: LabelBudget) -> None:
        self._metrics = metrics
        self._demand = demand
        self._labels = labels
        self._counters: dict[tuple[str, str], Any] = {}

    def label(self, model_id: str) -> str:
        """The metric label of a model (`_other` past the label budget)."""
        return self._labels.label(model_id)

    def count(self, model_id: str, status: ResultStatus) -> None:
        """One finished request in the requests counter."""
        key = (self._labels.label(model_id), status.value)
        counter = self._counters.get(key)
        if counter is None:  # labels() resolves the child each call; rows of one model reuse it
            counter = self._counters[key] = self._metrics.requests.labels(*key)
        counter.inc()

    def result(
        self, request: Pending, status: ResultStatus, tokens: tuple[int, int], inference_ms: float, t: Timings
    ) -> None:
        """A request's result: counted, in the demand window, and (when ok) its latency and router overhead."""
        self.count(request.model_id, status)
        self._demand.record(request.model_id, request.region, status.value, tokens[0], tokens[1], t.total_ms)
        if status is ResultStatus.OK:
            self._metrics.latency.observe(t.total_ms / 1000)
            overhead_ms = t.total_ms - t.queued_ms - t.batched_ms - inference_ms
            self._metrics.overhead.observe(max(0.0, overhead_ms) / 1000)

    def batch_sent(self, batch: Batch) -> None:
        """A batch going out to Triton (its size, and the demand window's batch count)."""
        self._metrics.batch_size.observe(len(batch.requests))
        self._demand.record_batch(batch.model_id, batch.requests[0].region)
