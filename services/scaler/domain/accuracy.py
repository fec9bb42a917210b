"""Forecast accuracy measures beside sMAPE: MASE and the pinball (quantile) loss.

sMAPE scores any non-zero forecast of an empty bucket as the worst error (2), so on bursty
demand it rewards copying zeros. MASE divides the absolute error by the in-sample error of
seasonal naive, so it is defined on empty buckets and comparable across series; the pinball loss
judges a quantile forecast, which is what capacity is provisioned from.
"""

from __future__ import annotations

import numpy as np

from services.scaler.domain.series import Series


def mase_scale(history: Series, period: int) -> float:
    """Mean absolute change over one season of the history (one step when shorter); never zero."""
    lag = period if 0 < period < len(history) else 1
    if len(history) > lag:
        change = float(np.abs(history[lag:] - history[:-lag]).mean())
        if change > 0:
            return change
    # A flat history has no naive error to scale by: fall back to its level, then to one.
    return (float(np.abs(history).mean()) if history.size else 0.0) or 1.0


def mase(actual: Series, forecast: Series, scale: float) -> float:
    """Mean absolute error divided by `scale` (from `mase_scale` of the history before `actual`)."""
    return float(np.abs(actual - forecast).mean()) / scale if actual.size else 0.0


def pinball(actual: Series, forecast: Series, q: float, scale: float = 1.0) -> float:
    """Mean quantile loss of `forecast` as the q-quantile: under-forecasts cost q, over-forecasts 1 - q."""
    if not actual.size:
        return 0.0
    miss = actual - forecast
    return float(np.maximum(q * miss, (q - 1.0) * miss).mean()) / scale
