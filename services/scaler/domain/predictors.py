"""The forecasters, in numpy: Holt-Winters, a seasonal pattern matcher, ridge regression, seasonal naive.

Each takes the whole series, the origins to forecast from (a back-test origin and the end) and
the horizon, and returns one forecast per origin, so the ensemble back-tests and forecasts in
one call. Holt-Winters runs its whole parameter grid at once (vectorised over the grid) and
snapshots its states at each origin: one pass over the data serves the back-test and the forecast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import product

import numpy as np

from services.scaler.domain.series import Seasons, Series

Predictor = Callable[[Series, Sequence[int], int, Seasons], list[Series]]

# Smoothing grid (level, trend, season); trend is damped so long horizons do not run away.
_GRID = np.array(list(product((0.05, 0.2, 0.5, 0.8), (0.0, 0.05), (0.05, 0.2, 0.4))), dtype=np.float64)
_PHI = 0.97


def holt_winters(y: Series, origins: Sequence[int], horizon: int, seasons: Seasons) -> list[Series]:
    """Additive damped Holt-Winters (daily season when two days are known), best grid point per origin."""
    m = seasons.day if len(y) >= 2 * seasons.day and seasons.day > 1 else 1
    alpha, beta = _GRID[:, 0], _GRID[:, 1]
    gamma = _GRID[:, 2] if m > 1 else np.zeros(len(_GRID))
    level = np.full(len(_GRID), y[:m].mean() if len(y) else 0.0)
    trend = np.full(len(_GRID), (y[m : 2 * m].mean() - y[:m].mean()) / m if m > 1 else 0.0)
    season = np.tile(y[:m] - y[:m].mean(), (len(_GRID), 1)) if m > 1 else np.zeros((len(_GRID), 1))
    sse = np.zeros(len(_GRID))
    snapshots: dict[int, tuple[Series, Series, Series, Series]] = {}
    wanted = set(origins)
    for t, value in enumerate(y):
        if t in wanted:
            snapshots[t] = (level.copy(), trend.copy(), season.copy(), sse.copy())
        pos = t % m
        predicted = level + _PHI * trend + season[:, pos]
        sse += (value - predicted) ** 2
        new_level = alpha * (value - season[:, pos]) + (1 - alpha) * (level + _PHI * trend)
        trend = beta * (new_level - level) + (1 - beta) * _PHI * trend
        season[:, pos] = gamma * (value - new_level) + (1 - gamma) * season[:, pos]
        level = new_level
    snapshots[len(y)] = (level, trend, season, sse)
    steps = np.arange(1, horizon + 1)
    damping = np.cumsum(_PHI**steps)
    forecasts = []
    for origin in origins:
        lv, tr, se, err = snapshots[origin]
        best = int(np.argmin(err))
        forecasts.append(lv[best] + damping * tr[best] + se[best, (origin + steps - 1) % m])
    return forecasts


def seasonal_pattern(y: Series, origins: Sequence[int], horizon: int, seasons: Seasons) -> list[Series]:
    """The mean of the same time yesterday and the same time last week (whichever are known)."""
    return [_pattern(y[:origin], horizon, seasons) for origin in origins]


def _pattern(y: Series, horizon: int, seasons: Seasons) -> Series:
    n = len(y)
    out = np.empty(horizon)
    for h in range(horizon):
        target = n + h
        lags = [y[target - p * (1 + h // p)] for p in (seasons.day, seasons.week) if target - p * (1 + h // p) >= 0]
        out[h] = np.mean(lags) if lags else (y[-seasons.day :].mean() if n else 0.0)
    return out


def seasonal_naive(y: Series, origins: Sequence[int], horizon: int, seasons: Seasons) -> list[Series]:
    """The baseline: the last full day repeated (the last value when less than a day is known)."""
    result = []
    for origin in origins:
        past, p = y[:origin], seasons.day
        if len(past) >= p:
            result.append(past[len(past) - p + (np.arange(horizon) % p)])
        else:
            result.append(np.full(horizon, past[-1] if len(past) else 0.0))
    return result


def ridge(y: Series, origins: Sequence[int], horizon: int, seasons: Seasons, penalty: float = 1.0) -> list[Series]:
    """Ridge regression on recent lags, seasonal lags and Fourier terms, forecast step by step."""
    return [_ridge(y[:origin], horizon, seasons, penalty) for origin in origins]


def _lags_for(n: int, seasons: Seasons) -> list[int]:
    """Lags the history can support with enough rows left to fit (a week lag needs > a week)."""
    lags = [1, 2, 3]
    lags += [p for p in (seasons.day, seasons.week) if p > 3 and n >= p + max(12, p // 2)]
    return [lag for lag in lags if n >= lag + 8]


def _fourier(t: Series, seasons: Seasons) -> list[Series]:
    angles = [2 * np.pi * k * t / p for p in (seasons.day, seasons.week) if p > 2 for k in (1, 2)]
    return [*(np.sin(a) for a in angles), *(np.cos(a) for a in angles)]


def _ridge(y: Series, horizon: int, seasons: Seasons, penalty: float) -> Series:
    lags = _lags_for(len(y), seasons)
    if not lags:
        return np.full(horizon, y.mean() if len(y) else 0.0)
    scale = float(np.abs(y).mean()) or 1.0  # fit on a unit scale so one penalty suits every model
    z = np.concatenate([y / scale, np.zeros(horizon)])
    start, n = max(lags), len(y)
    t = np.arange(start, n, dtype=np.float64)
    columns = [np.ones(len(t)), *(z[start - lag : n - lag] for lag in lags), *_fourier(t, seasons)]
    rows = np.column_stack(columns)
    weights = np.linalg.solve(rows.T @ rows + penalty * np.eye(rows.shape[1]), rows.T @ z[start:n])
    # Step by step: a forecast feeds the short lags of the steps after it.
    future = np.column_stack(
        [
            np.ones(horizon),
            *(np.zeros(horizon) for _ in lags),
            *_fourier(np.arange(n, n + horizon, dtype=np.float64), seasons),
        ]
    )
    for h in range(horizon):
        future[h, 1 : 1 + len(lags)] = [z[n + h - lag] for lag in lags]
        z[n + h] = float(future[h] @ weights)
    return z[n:] * scale
