"""MASE and the pinball loss: scale, fallbacks, and that the pinball loss rewards the right quantile."""

from __future__ import annotations

import numpy as np
import pytest

from services.scaler.domain.accuracy import mase, mase_scale, pinball


def test_the_mase_scale_is_seasonal_naive_error_in_sample():
    history = np.array([1.0, 5.0, 2.0, 6.0, 3.0, 7.0])
    assert mase_scale(history, 2) == pytest.approx(1.0)  # every value is 1 above the one a season back
    assert mase_scale(history, 10) == pytest.approx(np.abs(np.diff(history)).mean())  # shorter than a season


def test_a_flat_history_scales_by_its_level_and_an_empty_one_by_one():
    assert mase_scale(np.full(8, 4.0), 2) == 4.0
    assert mase_scale(np.zeros(8), 2) == 1.0
    assert mase_scale(np.array([]), 2) == 1.0


def test_mase_is_absolute_error_over_the_scale_and_defined_on_empty_buckets():
    assert mase(np.array([0.0, 0.0, 10.0]), np.array([3.0, 0.0, 10.0]), scale=2.0) == pytest.approx(0.5)
    assert mase(np.array([]), np.array([]), scale=2.0) == 0.0


def test_pinball_charges_under_forecasts_q_and_over_forecasts_one_minus_q():
    actual = np.array([10.0])
    assert pinball(actual, np.array([0.0]), 0.9) == pytest.approx(9.0)
    assert pinball(actual, np.array([20.0]), 0.9) == pytest.approx(1.0)
    assert pinball(actual, np.array([10.0]), 0.9) == 0.0
    assert pinball(actual, np.array([0.0]), 0.9, scale=3.0) == pytest.approx(3.0)


def test_the_true_quantile_has_the_least_pinball_loss():
    draws = np.random.default_rng(5).poisson(50, 20_000).astype(np.float64)
    losses = {q: pinball(draws, np.full(draws.size, np.quantile(draws, q)), 0.9) for q in (0.5, 0.8, 0.9, 0.97)}
    assert min(losses, key=losses.__getitem__) == 0.9
