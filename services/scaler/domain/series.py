"""Demand history as a time series: buckets, seasonal periods, error measure and compaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray

Series = NDArray[np.float64]


@dataclass(frozen=True)
class Seasons:
    """Seasonal periods in buckets (a day and a week of the bucket size, or compressed ones)."""

    day: int
    week: int

    @classmethod
    def for_bucket(cls, bucket_s: int, day_buckets: int = 0, week_buckets: int = 0) -> Seasons:
        """Periods for a bucket size; explicit counts win (a time-compressed replay sets them)."""
        day = day_buckets or max(1, round(86_400 / bucket_s))
        return cls(day=day, week=week_buckets or 7 * day)


@dataclass(frozen=True)
class DemandSample:
    """One stored window of demand (requests and tokens) for a model in a region."""

    model_id: str
    region: str
    window_start: datetime
    window_end: datetime
    requests: int
    tokens_in: int = 0
    tokens_out: int = 0
    latency_p95_ms: float | None = None


def bucket_index(at: datetime, bucket_s: int) -> int:
    """The bucket number of an instant (buckets are aligned to the epoch)."""
    return int(at.timestamp() // bucket_s)


def to_series(counts: dict[int, float], first: int, last: int) -> Series:
    """A dense series over buckets first..last inclusive; buckets without windows count zero."""
    series = np.zeros(max(0, last - first + 1), dtype=np.float64)
    for index, value in counts.items():
        if first <= index <= last:
            series[index - first] += value
    return series


def smape(actual: Series, forecast: Series) -> float:
    """Symmetric mean absolute percentage error in [0, 2]; a pair of zeros counts as exact."""
    denominator = np.abs(actual) + np.abs(forecast)
    terms = np.divide(
        2.0 * np.abs(forecast - actual), denominator, out=np.zeros_like(denominator), where=denominator > 0
    )
    return float(terms.mean()) if terms.size else 0.0


def compact(samples: Iterable[DemandSample], before: datetime, bucket_s: int = 3600) -> list[DemandSample]:
    """Merge windows that start before `before` into one window per model, region and bucket.

    Windows after the cut are returned unchanged. Merging keeps the totals (requests and tokens)
    and the worst p95, so forecasts from compacted history see the same demand per hour.
    """
    merged: dict[tuple[str, str, int], list[DemandSample]] = {}
    kept: list[DemandSample] = []
    for sample in samples:
        if sample.window_start >= before:
            kept.append(sample)
        else:
            merged.setdefault((sample.model_id, sample.region, bucket_index(sample.window_start, bucket_s)), []).append(
                sample
            )
    for (model_id, region, index), group in sorted(merged.items()):
        start = datetime.fromtimestamp(index * bucket_s, tz=group[0].window_start.tzinfo)
        p95s = [s.latency_p95_ms for s in group if s.latency_p95_ms is not None]
        kept.append(
            DemandSample(
                model_id=model_id,
                region=region,
                window_start=start,
                window_end=start + timedelta(seconds=bucket_s),
                requests=sum(s.requests for s in group),
                tokens_in=sum(s.tokens_in for s in group),
                tokens_out=sum(s.tokens_out for s in group),
                latency_p95_ms=max(p95s) if p95s else None,
            )
        )
    return kept
