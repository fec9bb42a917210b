"""What a run measures: requests and their latency per model and hour, GPU time, cost, over time.

Latency is kept as a histogram per model and hour (log-spaced bins), filled from mixtures (a
stream's wait plus its sampled service times, weighted by what it served), so p95 per model-hour
comes from the histogram, never from per-request loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
EDGES = np.geomspace(1e-3, 3600.0, 401)  # seconds; ~3.8% wide bins
MIDS = np.sqrt(EDGES[:-1] * EDGES[1:])
BINS = len(EDGES) + 1  # below the first edge, the 400 bins, above the last
MISS_CAUSES: tuple[str, ...] = ("service", "cold_start", "queueing")


def bin_of(latency_s: Array) -> NDArray[np.int64]:
    """The histogram bin of each latency."""
    return np.asarray(np.searchsorted(EDGES, latency_s, side="right"), dtype=np.int64)


def percentile(hist: Array, q: float) -> float:
    """The q-quantile (0..1) of a histogram over BINS, in seconds (NaN when empty)."""
    total = hist.sum()
    if total <= 0:
        return float("nan")
    index = int(np.searchsorted(np.cumsum(hist), q * total))
    values = np.concatenate([[EDGES[0]], MIDS, [EDGES[-1]]])
    return float(values[min(index, len(values) - 1)])


@dataclass
class Accounts:
    """Per hour and model: requests, SLO hits, latency histogram; per hour: GPU seconds and dollars."""

    hours: int
    models: int
    arrived: Array = field(init=False)
    served: Array = field(init=False)
    rejected: Array = field(init=False)
    within_slo: Array = field(init=False)
    within_target: Array = field(init=False)
    hist: Array = field(init=False)
    allocated_gpu_s: Array = field(init=False)
    busy_gpu_s: Array = field(init=False)
    dollars: Array = field(init=False)
    series: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = (self.hours, self.models)
        self.arrived, self.served, self.rejected = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.within_slo, self.within_target = np.zeros(shape), np.zeros(shape)
        self.hist = np.zeros((self.hours, self.models, BINS))
        self.instance_gpu_s = np.zeros(self.models)  # GPU seconds of each model's serving instances
        # Served requests over the SLO per model, by the first cause that alone puts them over (`misses`).
        self.missed = {cause: np.zeros(self.models) for cause in MISS_CAUSES}
        self.allocated_gpu_s, self.busy_gpu_s, self.dollars = (
            np.zeros(self.hours),
            np.zeros(self.hours),
            np.zeros(self.hours),
        )

    def latency(
        self, hour: int, model: NDArray[np.int64], weight: Array, latency_s: Array, slo_s: float, target_s: Array
    ) -> None:
        """Served requests of rows `model` [n], each a mixture of latencies [n, k] with total `weight` [n]."""
        k = latency_s.shape[1]
        share = weight / k
        self.served[hour] += np.bincount(model, weights=weight, minlength=self.models)
        hits = (latency_s <= slo_s).sum(axis=1) * share
        self.within_slo[hour] += np.bincount(model, weights=hits, minlength=self.models)
        hits = (latency_s <= target_s[:, None]).sum(axis=1) * share
        self.within_target[hour] += np.bincount(model, weights=hits, minlength=self.models)

    def misses(
        self, model: NDArray[np.int64], weight: Array, service_s: Array, held_s: Array, latency_s: Array, slo_s: float
    ) -> None:
        """Attribute rows' SLO misses [n, k] to a cause: the first of these that alone breaks the SLO.

        `service_s`: the request with no wait at all (round trip, batcher, prefill; E2E: its
        decode); `held_s`: plus the cold-start hold it waited in; `latency_s`: plus the queue.
        "service": too slow even unqueued (GPU type, precision, prompt length, another region);
        "cold_start": the hold for a model no server had; "queueing": waiting for capacity.
        """
        share = weight / latency_s.shape[1]
        over = latency_s > slo_s
        service = service_s > slo_s
        cold = (held_s > slo_s) & ~service
        for cause, hit in (("service", service), ("cold_start", cold), ("queueing", over & ~service & ~cold)):
            self.missed[cause] += np.bincount(model, weights=hit.sum(axis=1) * share, minlength=self.models)

    def record(self, name: str, value: float) -> None:
        """Append one value to a time series (sampled every control tick)."""
        self.series.setdefault(name, []).append(float(value))

    def p95_model_hours(self) -> Array:
        """p95 latency (s) of each model in each hour [hour, model]; NaN where nothing was served."""
        return np.array([[percentile(self.hist[h, m], 0.95) for m in range(self.models)] for h in range(self.hours)])
