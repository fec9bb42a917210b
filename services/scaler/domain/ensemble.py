"""The ensemble: back-test every predictor on the recent past, weight by accuracy, forecast.

Weights come from each predictor's back-test MASE (absolute error scaled by seasonal naive's),
which is defined on empty buckets where sMAPE is not. Quantiles come from the ensemble's own
back-test misses; capacity is provisioned from the upper one, not the mean. Confidence comes
from the back-test sMAPE (1 - sMAPE), discounted while less than a day of history is known:
without a full day the daily pattern is a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from services.scaler.domain.accuracy import mase, mase_scale
from services.scaler.domain.intermittent import tsb
from services.scaler.domain.predictors import Predictor, holt_winters, ridge, seasonal_pattern
from services.scaler.domain.series import Seasons, Series, smape

PREDICTORS: Mapping[str, Predictor] = {
    "holt_winters": holt_winters,
    "seasonal": seasonal_pattern,
    "ridge": ridge,
    "tsb": tsb,
}
MIN_HISTORY = 6  # buckets; below this there is nothing to back-test against
PROVISION_QUANTILE = 0.9  # capacity covers demand in nine buckets out of ten
QUANTILES = (0.5, PROVISION_QUANTILE)
MAX_ORIGINS = 8  # back-test origins per forecast: each costs a forecast from every predictor
_BACKTEST_DAYS = 2  # held out by default: enough misses for a 0.9 quantile, the daily pattern seen twice
_ERROR_FLOOR = 0.02  # keeps a perfect back-test from taking all the weight on a tiny sample


@dataclass(frozen=True)
class Forecast:
    """Requests per bucket over the horizon (the mean), its quantiles, confidence and each predictor's part."""

    values: Series
    confidence: float
    predictions: dict[str, Series] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)  # back-test sMAPE per predictor
    error: float = 2.0  # back-test sMAPE of the ensemble
    scaled_errors: dict[str, float] = field(default_factory=dict)  # back-test MASE per predictor (the weights')
    quantiles: dict[float, Series] = field(default_factory=dict)

    def per_hour(self, bucket_s: int) -> list[float]:
        """The forecast as requests per hour, bucket by bucket."""
        return [float(v) * 3600.0 / bucket_s for v in self.values]

    def quantile(self, q: float) -> Series:
        """The q-quantile of demand per bucket (the mean where the back-test gave none)."""
        return self.quantiles.get(q, self.values)

    def provision_per_hour(self, bucket_s: int, q: float = PROVISION_QUANTILE) -> list[float]:
        """The demand to provision for, as requests per hour, bucket by bucket: the q-quantile."""
        return [float(v) * 3600.0 / bucket_s for v in self.quantile(q)]

    def next_hour_requests(self, bucket_s: int) -> float:
        """Requests expected in the hour after the horizon start."""
        covered = self.values[: max(1, round(3600 / bucket_s))]
        return float(covered.mean()) * 3600.0 / bucket_s if covered.size else 0.0


def weights_from(errors: Mapping[str, float]) -> dict[str, float]:
    """Inverse-square back-test error weights that sum to one."""
    raw = {name: 1.0 / (err + _ERROR_FLOOR) ** 2 for name, err in errors.items()}
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


def backtest_origins(n: int, held: int, horizon: int) -> list[int]:
    """Origins across the last `held` buckets, the last one `horizon` from the end, at most MAX_ORIGINS.

    Each back-test forecast runs `horizon` ahead, as the real one does, so the errors that weight
    the predictors (and give the quantiles) are errors at the horizon in use.
    """
    if held <= horizon:
        return [n - held]
    stride = max(horizon, math.ceil(held / MAX_ORIGINS))
    return sorted(range(n - horizon, n - held - 1, -stride))[-MAX_ORIGINS:]


def forecast(
    y: Series,
    horizon: int,
    seasons: Seasons,
    backtest: int = 0,
    predictors: Mapping[str, Predictor] = PREDICTORS,
    quantiles: Sequence[float] = QUANTILES,
) -> Forecast:
    """Forecast `horizon` buckets after `y`, back-testing on its last `backtest` buckets (0: two days, capped)."""
    n = len(y)
    if n < MIN_HISTORY:
        flat = np.full(horizon, float(y.mean()) if n else 0.0)
        return Forecast(values=flat, confidence=0.0, quantiles={q: flat for q in quantiles})
    held = backtest or max(1, min(max(horizon, _BACKTEST_DAYS * seasons.day), n // 4))
    origins = backtest_origins(n, held, horizon)
    runs = {name: predict(y, [*origins, n], horizon, seasons) for name, predict in predictors.items()}
    actual = np.concatenate([y[origin : origin + horizon] for origin in origins])
    tested = {name: _backtest(run, origins, n) for name, run in runs.items()}
    scale = mase_scale(y[: origins[0]], seasons.day)
    scaled = {name: mase(actual, bt, scale) for name, bt in tested.items()}
    weights = weights_from(scaled)
    combined = _clip(sum(w * tested[name] for name, w in weights.items()))
    values = _clip(sum(w * runs[name][-1] for name, w in weights.items()))
    error = smape(actual, combined)
    return Forecast(
        values=values,
        confidence=float(np.clip(1.0 - error, 0.0, 1.0)) * min(1.0, n / seasons.day),
        predictions={name: _clip(r[-1]) for name, r in runs.items()},
        weights=weights,
        errors={name: smape(actual, bt) for name, bt in tested.items()},
        error=error,
        scaled_errors=scaled,
        quantiles={q: quantile_from_misses(values, actual, combined, q) for q in quantiles},
    )


def quantile_from_misses(values: Series, actual: Series, tested: Series, q: float) -> Series:
    """The q-quantile forecast: the mean shifted by the q-quantile of the back-test's misses.

    Misses are taken relative to the back-test's mean level and scaled to each bucket's forecast,
    so a busy hour gets a wider margin than a quiet one (demand noise grows with demand).
    """
    misses = actual - tested
    level = float(tested.mean())
    if level > 0:
        return _clip(values * (1.0 + float(np.quantile(misses / level, q))))
    return _clip(values + float(np.quantile(misses, q)))


def _backtest(run: list[Series], origins: list[int], n: int) -> Series:
    """A predictor's back-test forecasts, each cut to the buckets that have actuals, end to end."""
    return _clip(np.concatenate([values[: n - origin] for values, origin in zip(run, origins, strict=False)]))


def _clip(values: Series | float) -> Series:
    return np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
