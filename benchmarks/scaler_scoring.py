"""Scoring forecasters on the same windows: MASE, sMAPE, pinball at the provisioning quantile, fit time.

A forecaster takes the history before a window, the horizon and the seasons and returns its mean,
median and upper (provisioning) quantile. Each window is one call, timed: the ensemble and the
statsforecast peers alike fit and forecast in that call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from services.scaler.domain.accuracy import mase, mase_scale, pinball
from services.scaler.domain.ensemble import PROVISION_QUANTILE, forecast
from services.scaler.domain.predictors import seasonal_naive
from services.scaler.domain.series import Seasons, Series, smape

Window = tuple[Series, Series]  # (history, what came next)


@dataclass(frozen=True)
class Prediction:
    """One forecaster's answer for one window: the mean, the median and the provisioning quantile."""

    mean: Series
    median: Series
    upper: Series

    @classmethod
    def point(cls, values: Series) -> Prediction:
        """A forecaster without quantiles: its point forecast stands for all three."""
        return cls(values, values, values)


Forecaster = Callable[[Series, int, Seasons], Prediction]


@dataclass
class Scores:
    """Per-window measures of one forecaster on one series, averaged on demand."""

    mase: list[float] = field(default_factory=list)
    mase_mean: list[float] = field(default_factory=list)
    smape: list[float] = field(default_factory=list)
    pinball: list[float] = field(default_factory=list)
    coverage: list[float] = field(default_factory=list)
    fit_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Mean of each measure over the windows (coverage: share of actuals at or under the upper quantile)."""
        return {
            "mase": round(float(np.mean(self.mase)), 4),
            "mase_mean": round(float(np.mean(self.mase_mean)), 4),
            "smape": round(float(np.mean(self.smape)), 4),
            "pinball": round(float(np.mean(self.pinball)), 4),
            "coverage": round(float(np.mean(self.coverage)), 4),
            "fit_ms": round(1000 * float(np.mean(self.fit_s)), 3),
        }


def rolling_windows(series: Series, horizon: int) -> list[Window]:
    """Every origin in the series' last quarter with a full horizon after it."""
    return [
        (series[:o], series[o : o + horizon]) for o in range(len(series) - len(series) // 4, len(series) - horizon + 1)
    ]


def score(forecaster: Forecaster, windows: Iterable[Window], seasons: Seasons) -> Scores:
    """Run the forecaster on every window and score it.

    MASE and pinball are scaled by seasonal naive's in-sample error on the window's history, so
    windows and series of any level average fairly. MASE judges the median (the point forecast
    absolute error calls for); `mase_mean` judges the mean, and sMAPE the mean as it always did.
    """
    scores = Scores()
    for history, actual in windows:
        started = time.perf_counter()
        prediction = forecaster(history, len(actual), seasons)
        scores.fit_s.append(time.perf_counter() - started)
        scale = mase_scale(history, seasons.day)
        scores.mase.append(mase(actual, prediction.median, scale))
        scores.mase_mean.append(mase(actual, prediction.mean, scale))
        scores.smape.append(smape(actual, prediction.mean))
        scores.pinball.append(pinball(actual, prediction.upper, PROVISION_QUANTILE, scale))
        scores.coverage.append(float(np.mean(actual <= prediction.upper)))
    return scores


def ensemble(history: Series, horizon: int, seasons: Seasons) -> Prediction:
    """The scaler's ensemble: its mean, its median and the quantile capacity is provisioned from."""
    result = forecast(history, horizon, seasons)
    return Prediction(result.values, result.quantile(0.5), result.quantile(PROVISION_QUANTILE))


def naive(history: Series, horizon: int, seasons: Seasons) -> Prediction:
    """Seasonal naive, the baseline: the last season repeated, as mean, median and quantile alike."""
    return Prediction.point(seasonal_naive(history, [len(history)], horizon, seasons)[0])
