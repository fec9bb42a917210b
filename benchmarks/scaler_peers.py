"""statsforecast peers for the scaler benchmark: AutoETS, MSTL and CrostonOptimized.

They run on the same series and windows as the ensemble, one fit and forecast per window. They
are benchmark peers only (the `bench` dependency group), never a dependency of the service.
Forecasts are clipped at zero as the ensemble's are: demand is never negative. The provisioning
quantile is the upper end of each model's 80% interval (the 0.9 quantile): AutoETS and MSTL give
it from their own model; Croston has none, so it gets statsforecast's conformal interval.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.scaler_scoring import Forecaster, Prediction, Window
from services.scaler.domain.series import Seasons, Series

LEVEL = 80  # a central 80% interval: its upper end is the 0.9 quantile, the provisioning quantile
PEERS = ("autoets", "mstl", "croston")


def load() -> tuple[dict[str, Forecaster], float]:
    """The peers, and the seconds their first import took (kept out of every timed fit)."""
    started = time.perf_counter()
    models = importlib.import_module("statsforecast.models")
    utils = importlib.import_module("statsforecast.utils")
    imported = time.perf_counter() - started

    def autoets(seasons: Seasons, history: Series, horizon: int) -> Any:
        return models.AutoETS(season_length=seasons.day)

    def mstl(seasons: Seasons, history: Series, horizon: int) -> Any:
        # STL needs two full periods of each season: the week only where the history holds two.
        periods = [p for p in (seasons.day, seasons.week) if len(history) >= 2 * p] or [seasons.day]
        return models.MSTL(season_length=periods)

    def croston(seasons: Seasons, history: Series, horizon: int) -> Any:
        return models.CrostonOptimized(prediction_intervals=utils.ConformalIntervals(h=horizon, n_windows=2))

    makers = {"autoets": autoets, "mstl": mstl, "croston": croston}
    return {name: _peer(make) for name, make in makers.items()}, imported


def _peer(make: Callable[[Seasons, Series, int], Any]) -> Forecaster:
    def run(history: Series, horizon: int, seasons: Seasons) -> Prediction:
        result = make(seasons, history, horizon).forecast(y=history, h=horizon, level=[LEVEL])
        mean = np.clip(np.asarray(result["mean"], dtype=np.float64), 0.0, None)
        upper = np.clip(np.asarray(result[f"hi-{LEVEL}"], dtype=np.float64), 0.0, None)
        return Prediction(mean, mean, upper)  # their intervals are symmetric: the median is the mean

    return run


def first_calls(peers: dict[str, Forecaster], window: Window, seasons: Seasons) -> dict[str, float]:
    """Seconds of each peer's first fit in this process (any one-off set-up shows here, not in the scores)."""
    seconds = {}
    for name, peer in peers.items():
        started = time.perf_counter()
        peer(window[0], len(window[1]), seasons)
        seconds[name] = time.perf_counter() - started
    return seconds
