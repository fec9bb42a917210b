"""Forecasts: each predictor's shape, the ensemble's weights and confidence, and back-tests on real traces."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.scaler_data import TRACE_FILES, synthetic_hourly, trace_series
from services.scaler.domain.ensemble import PREDICTORS, forecast, weights_from
from services.scaler.domain.predictors import seasonal_naive
from services.scaler.domain.series import Seasons, smape

HOURLY = Seasons.for_bucket(3600)


def test_seasons_for_a_bucket_size():
    assert Seasons(day=24, week=168) == HOURLY
    assert Seasons.for_bucket(60) == Seasons(day=1440, week=10080)
    assert Seasons.for_bucket(10, day_buckets=36) == Seasons(day=36, week=252)


def test_smape_bounds_and_zeros():
    assert smape(np.array([0.0, 10.0]), np.array([0.0, 10.0])) == 0.0
    assert smape(np.array([0.0]), np.array([5.0])) == 2.0
    assert smape(np.array([100.0]), np.array([50.0])) == pytest.approx(2 * 50 / 150)


@pytest.mark.parametrize("name", sorted(PREDICTORS))
def test_each_predictor_gives_a_finite_forecast_per_origin(name):
    history = synthetic_hourly(1, 20, seed=3)[0]
    results = PREDICTORS[name](history, [len(history) - 24, len(history)], 12, HOURLY)
    assert [r.shape for r in results] == [(12,), (12,)]
    assert all(np.isfinite(r).all() for r in results)
    # Same-day level: within a factor of three of the last day's mean.
    assert 0.33 < results[1].mean() / history[-24:].mean() < 3


def test_weights_favour_the_more_accurate_predictor_and_sum_to_one():
    weights = weights_from({"good": 0.1, "bad": 0.5})
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["good"] > 5 * weights["bad"]


def test_a_steady_series_is_forecast_steady_with_high_confidence():
    result = forecast(np.full(48, 100.0), 6, HOURLY)
    assert np.allclose(result.values, 100.0, rtol=0.02)
    assert result.confidence > 0.95
    assert set(result.predictions) == set(PREDICTORS)


def test_little_history_gives_little_confidence():
    assert forecast(np.array([5.0, 6.0]), 3, HOURLY).confidence == 0.0
    assert forecast(np.full(12, 100.0), 3, HOURLY).confidence <= 0.5  # half a day of a daily pattern


def test_ensemble_beats_seasonal_naive_on_seeded_synthetic_histories():
    ours, naive = [], []
    for history in synthetic_hourly(10, 30, seed=11):
        train, test = history[:-24], history[-24:]
        ours.append(smape(test, forecast(train, 24, HOURLY).values))
        naive.append(smape(test, seasonal_naive(train, [len(train)], 24, HOURLY)[0]))
    assert np.mean(ours) < np.mean(naive)


def rolling_backtest(series: np.ndarray, seasons: Seasons, horizon: int = 3) -> tuple[float, float]:
    """Forecast `horizon` buckets from every origin in the last quarter; mean sMAPE of ensemble and naive."""
    ours, naive = [], []
    for origin in range(len(series) - len(series) // 4, len(series) - horizon + 1):
        train, test = series[:origin], series[origin : origin + horizon]
        ours.append(smape(test, forecast(train, horizon, seasons).values))
        naive.append(smape(test, seasonal_naive(train, [origin], horizon, seasons)[0]))
    return float(np.mean(ours)), float(np.mean(naive))


@pytest.mark.parametrize("bucket_s", [30, 60])
def test_ensemble_beats_seasonal_naive_on_the_azure_conversation_trace(bucket_s):
    series = trace_series(TRACE_FILES[1], bucket_s)
    assert len(series) >= 50
    ours, naive = rolling_backtest(series, Seasons(day=10, week=30))
    assert ours < naive


def test_rates_per_hour_and_next_hour_requests_from_small_buckets():
    result = forecast(np.full(400, 5.0), 12, Seasons(day=36, week=252))  # 5 per 10 s bucket
    assert result.per_hour(10)[0] == pytest.approx(1800.0, rel=0.02)
    # Twelve buckets cover two minutes; their mean rate stands for the rest of the hour.
    assert result.next_hour_requests(10) == pytest.approx(1800.0, rel=0.02)
    hourly = forecast(np.full(48, 120.0), 3, HOURLY)
    assert hourly.next_hour_requests(3600) == pytest.approx(120.0, rel=0.02)
