"""Small pure helpers the report's sections share: percentiles, time bins, the run's clock."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from llmfleet.run_data import ObservedEvent, ReplayRun

PEAK_BIN_S = 10.0  # the window of the "peak 10 s request rate"


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between ranks; None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean; None when there are no values."""
    return sum(values) / len(values) if values else None


def rounded(value: float | None, digits: int = 3) -> float | None:
    """Round for the summary (None stays None)."""
    return None if value is None else round(value, digits)


def bin_counts(times: Iterable[float], width_s: float) -> dict[int, int]:
    """How many times fall in each bin [i*width, (i+1)*width)."""
    counts: dict[int, int] = {}
    for t in times:
        index = math.floor(t / width_s)
        counts[index] = counts.get(index, 0) + 1
    return counts


def peak_in_window(times: Iterable[float], window_s: float) -> int:
    """The most times that fall in any window [t, t + window_s) (sliding, not fixed bins)."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] + window_s <= t:  # t lies past [ordered[start], ordered[start] + window)
            start += 1
        best = max(best, end - start + 1)
    return best


def plot_bin_s(span_s: float) -> float:
    """Bin width for the plots: 10 s on runs of 200 s or more, about 20 bins on shorter ones."""
    if span_s >= 200.0:
        return 10.0
    return max(1.0, round(span_s / 20.0))


def run_end_s(run: ReplayRun) -> float:
    """The replay clock's last measured instant: end of send + drain, last result or last event."""
    candidates = [0.0]
    sent = [r.sent_s for r in run.records if r.sent_s is not None]
    if sent:
        candidates.append(min(sent) + run.send_wall_s + run.drain_wall_s)
    candidates += [r.completed_s for r in run.records if r.completed_s is not None]
    candidates += [e.at_s for e in run.events]
    return max(candidates)


def unique_events(events: Iterable[ObservedEvent]) -> tuple[list[ObservedEvent], int]:
    """Events in replay-clock order with redeliveries (same event_id) dropped, and how many were dropped."""
    seen: set[str] = set()
    kept: list[ObservedEvent] = []
    dropped = 0
    for observed in sorted(events, key=lambda e: e.at_s):
        key = str(observed.event.event_id)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(observed)
    return kept, dropped
