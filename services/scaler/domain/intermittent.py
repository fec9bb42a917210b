"""An intermittent-demand predictor: TSB (Teunter, Syntetos and Babai 2011), in numpy.

Bursty demand (many empty buckets, then a burst) defeats level-and-season models: they chase
each burst. TSB smooths two things apart: the probability that a bucket has demand at all, updated
every bucket, and the size of a burst, updated only when one comes; the forecast is their
product. Unlike Croston's method it lets the forecast decay while demand stays away, and on
demand that never pauses it is simple exponential smoothing. Like Holt-Winters here, the whole
smoothing grid runs at once and its state is snapshot at each origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np

from services.scaler.domain.series import Seasons, Series

# (size, probability) smoothing; the usual range for intermittent demand, low enough not to chase bursts.
_GRID = np.array(list(product((0.05, 0.1, 0.2, 0.3), (0.05, 0.1, 0.2, 0.3))), dtype=np.float64)
_MIN_PROBABILITY = 0.05  # a first stretch without demand must not make demand look impossible


def tsb(y: Series, origins: Sequence[int], horizon: int, seasons: Seasons) -> list[Series]:
    """Demand probability times demand size, each exponentially smoothed; best grid point per origin."""
    size_alpha, prob_alpha = _GRID[:, 0], _GRID[:, 1]
    head = y[: max(1, min(len(y), seasons.day))]
    bursts = head[head > 0] if (head > 0).any() else y[y > 0]
    start_size = float(bursts.mean()) if bursts.size else 0.0
    probability = np.full(len(_GRID), max(float((head > 0).mean()) if head.size else 0.0, _MIN_PROBABILITY))
    size = np.full(len(_GRID), start_size)
    # Absolute one-step error picks the grid point: it is what MASE judges, and one burst
    # does not dominate it the way it dominates a squared error.
    error = np.zeros(len(_GRID))
    snapshots: dict[int, tuple[Series, Series]] = {}
    wanted = set(origins)
    for t, value in enumerate(y):
        if t in wanted:
            snapshots[t] = (probability * size, error.copy())
        error += np.abs(value - probability * size)
        if value > 0:
            size = size + size_alpha * (value - size)
            probability = probability + prob_alpha * (1.0 - probability)
        else:
            probability = probability - prob_alpha * probability
    snapshots[len(y)] = (probability * size, error)
    forecasts = []
    for origin in origins:
        level, err = snapshots[origin]
        forecasts.append(np.full(horizon, float(level[int(np.argmin(err))])))
    return forecasts
