"""The ensemble's quantiles and provisioning, its back-test origins, and MASE on the Azure traces."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.scaler_data import TRACE_FILES, synthetic_hourly, trace_series
from services.scaler.domain.accuracy import mase, mase_scale
from services.scaler.domain.ensemble import (
    MAX_ORIGINS,
    PREDICTORS,
    PROVISION_QUANTILE,
    Forecast,
    backtest_origins,
    forecast,
    weights_from,
)
from services.scaler.domain.predictors import seasonal_naive
from services.scaler.domain.series import Seasons

HOURLY = Seasons.for_bucket(3600)
TRACE_SEASONS = Seasons(day=10, week=30)


def test_the_intermittent_predictor_is_in_the_ensemble():
    assert "tsb" in PREDICTORS
    assert set(forecast(np.full(48, 100.0), 6, HOURLY).predictions) == set(PREDICTORS)


def test_back_test_origins_end_at_the_horizon_and_tile_the_held_out_window():
    assert backtest_origins(100, held=10, horizon=3) == [91, 94, 97]
    assert backtest_origins(100, held=24, horizon=24) == [76]
    assert backtest_origins(100, held=4, horizon=24) == [96]  # short history: one origin, fewer actuals
    many = backtest_origins(1000, held=200, horizon=2)
    assert len(many) == MAX_ORIGINS and many[-1] == 998


def test_weights_come_from_the_back_test_mase():
    result = forecast(synthetic_hourly(1, 10, seed=4)[0], 12, HOURLY)
    assert set(result.scaled_errors) == set(PREDICTORS)
    assert result.weights == pytest.approx(weights_from(result.scaled_errors))
    assert set(result.errors) == set(PREDICTORS)  # sMAPE per predictor is still recorded


def test_quantiles_are_ordered_and_capacity_is_provisioned_from_the_upper_one():
    result = forecast(synthetic_hourly(1, 14, seed=8)[0], 24, HOURLY)
    median, upper = result.quantile(0.5), result.quantile(PROVISION_QUANTILE)
    assert np.all(upper >= median) and np.all(upper >= 0)
    assert result.provision_per_hour(3600) == pytest.approx(upper.tolist())
    assert result.provision_per_hour(60)[0] == pytest.approx(upper[0] * 60)
    assert sum(result.provision_per_hour(3600)) > sum(result.per_hour(3600))


def test_without_a_back_test_every_quantile_is_the_mean():
    short = forecast(np.array([5.0, 6.0]), 3, HOURLY)
    assert short.quantile(PROVISION_QUANTILE).tolist() == short.values.tolist()
    idle = Forecast(values=np.zeros(4), confidence=0.0)  # what an evaluation uses for a region without demand
    assert idle.provision_per_hour(60) == [0.0] * 4


def test_the_provisioning_quantile_covers_most_of_the_next_day():
    covered = []
    for history in synthetic_hourly(10, 30, seed=17):
        upper = forecast(history[:-24], 24, HOURLY).quantile(PROVISION_QUANTILE)
        covered.append(np.mean(history[-24:] <= upper))
    assert 0.75 <= np.mean(covered) <= 0.99


@pytest.mark.parametrize("name", TRACE_FILES)
def test_the_ensemble_median_beats_seasonal_naive_on_mase_on_both_azure_traces(name):
    series, horizon = trace_series(name, 60), 3
    ours, naive = [], []
    for origin in range(len(series) - len(series) // 4, len(series) - horizon + 1):
        train, test = series[:origin], series[origin : origin + horizon]
        scale = mase_scale(train, TRACE_SEASONS.day)
        ours.append(mase(test, forecast(train, horizon, TRACE_SEASONS).quantile(0.5), scale))
        naive.append(mase(test, seasonal_naive(train, [origin], horizon, TRACE_SEASONS)[0], scale))
    assert np.mean(ours) < 0.8 * np.mean(naive)
