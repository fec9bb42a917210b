"""TSB, the intermittent-demand predictor: demand probability times burst size, decaying while demand is away."""

from __future__ import annotations

import numpy as np
import pytest

from services.scaler.domain.intermittent import tsb
from services.scaler.domain.series import Seasons

SEASONS = Seasons(day=10, week=30)


def test_steady_demand_is_forecast_at_its_level():
    [result] = tsb(np.full(40, 50.0), [40], 5, SEASONS)
    assert result == pytest.approx(np.full(5, 50.0))


def test_bursty_demand_is_forecast_near_its_mean_not_its_bursts():
    y = np.tile([0.0, 0.0, 0.0, 120.0], 15)  # a burst of 120 every fourth bucket: 30 per bucket
    [result] = tsb(y, [len(y)], 3, SEASONS)
    assert 10 < result[0] < 60
    assert np.all(result == result[0])  # flat: TSB says how much, not when


def test_the_forecast_decays_while_demand_stays_away():
    bursts = np.tile([0.0, 100.0], 10)
    early, late = tsb(np.concatenate([bursts, np.zeros(20)]), [len(bursts), len(bursts) + 20], 1, SEASONS)
    assert late[0] < 0.5 * early[0]


def test_one_forecast_per_origin_from_what_was_known_there():
    y = np.concatenate([np.full(20, 10.0), np.full(20, 100.0)])
    before, after = tsb(y, [20, 40], 4, SEASONS)
    assert before == pytest.approx(np.full(4, 10.0))
    assert after[0] > 50


def test_no_demand_at_all_forecasts_zero():
    assert tsb(np.zeros(12), [12], 3, SEASONS)[0].tolist() == [0.0, 0.0, 0.0]
