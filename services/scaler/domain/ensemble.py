"""The ensemble: back-test every predictor on the recent past, weight by accuracy, forecast.

Confidence comes from the ensemble's own back-test error (1 - sMAPE), discounted while less
than a day of history is known: without a full day the daily pattern is a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from services.scaler.domain.predictors import Predictor, holt_winters, ridge, seasonal_pattern
from services.scaler.domain.series import Seasons, Series, smape

PREDICTORS: Mapping[str, Predictor] = {"holt_winters": holt_winters, "seasonal": seasonal_pattern, "ridge": ridge}
MIN_HISTORY = 6  # buckets; below this there is nothing to back-test against
_ERROR_FLOOR = 0.02  # keeps a perfect back-test from taking all the weight on a tiny sample


@dataclass(frozen=True)
class Forecast:
    """Requests per bucket over the horizon, with the confidence and each predictor's part."""

    values: Series
    confidence: float
    predictions: dict[str, Series] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    error: float = 2.0

    def per_hour(self, bucket_s: int) -> list[float]:
        """The forecast as requests per hour, bucket by bucket."""
        return [float(v) * 3600.0 / bucket_s for v in self.values]

    def next_hour_requests(self, bucket_s: int) -> float:
        """Requests expected in the hour after the horizon start."""
        covered = self.values[: max(1, round(3600 / bucket_s))]
        return float(covered.mean()) * 3600.0 / bucket_s if covered.size else 0.0


def weights_from(errors: Mapping[str, float]) -> dict[str, float]:
    """Inverse-square back-test error weights that sum to one."""
    raw = {name: 1.0 / (err + _ERROR_FLOOR) ** 2 for name, err in errors.items()}
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


def forecast(
    y: Series, horizon: int, seasons: Seasons, backtest: int = 0, predictors: Mapping[str, Predictor] = PREDICTORS
) -> Forecast:
    """Forecast `horizon` buckets after `y`, back-testing on its last `backtest` buckets (0: auto)."""
    n = len(y)
    if n < MIN_HISTORY:
        return Forecast(values=np.full(horizon, float(y.mean()) if n else 0.0), confidence=0.0)
    held = backtest or max(1, min(max(horizon, seasons.day), n // 4))
    steps = max(held, horizon)
    runs = {name: predict(y, [n - held, n], steps, seasons) for name, predict in predictors.items()}
    actual = y[n - held :]
    errors = {name: smape(actual, np.clip(bt[:held], 0, None)) for name, (bt, _) in runs.items()}
    weights = weights_from(errors)
    tested = np.clip(sum(w * runs[name][0][:held] for name, w in weights.items()), 0, None)
    error = smape(actual, np.asarray(tested))
    coverage = min(1.0, n / seasons.day)
    values = np.clip(sum(w * runs[name][1][:horizon] for name, w in weights.items()), 0, None)
    return Forecast(
        values=np.asarray(values, dtype=np.float64),
        confidence=float(np.clip(1.0 - error, 0.0, 1.0)) * coverage,
        predictions={name: np.clip(fc[:horizon], 0, None) for name, (_, fc) in runs.items()},
        weights=weights,
        errors=errors,
        error=error,
    )
