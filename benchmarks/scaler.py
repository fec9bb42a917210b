"""Scaler benchmark: forecast 50 models with 30 days of hourly history, back-test on the Azure traces.

`python -m benchmarks.scaler` (or `make bench-scaler`). Prints readable lines; the last line is one
JSON object. Timings are wall-clock on this machine: `forecast_cold_s` is the first forecast in
a fresh process (imports included), `forecast_all_s` the median of three warm rounds of all 50.
"""

from __future__ import annotations

import importlib
import json
import statistics
import time
from typing import Any

import numpy as np

from benchmarks.scaler_data import TRACE_FILES, synthetic_hourly, trace_series

MODELS, DAYS, HORIZON, ROUNDS, SEED = 50, 30, 24, 3, 20261127
TRACE_BUCKETS_S = (30, 60)
TRACE_DAY_BUCKETS, TRACE_WEEK_BUCKETS, TRACE_HORIZON = 10, 30, 3  # a time-compressed "day" of 10 buckets


def cold_start() -> float:
    """Seconds to import the forecasting code and make the first forecast in this process."""
    started = time.perf_counter()
    ensemble = importlib.import_module("services.scaler.domain.ensemble")
    series = importlib.import_module("services.scaler.domain.series")
    ensemble.forecast(synthetic_hourly(1, DAYS, SEED + 1)[0], HORIZON, series.Seasons.for_bucket(3600))
    return time.perf_counter() - started


def forecast_rounds(histories: list[np.ndarray]) -> list[float]:
    """Seconds for each warm round of forecasting every history."""
    from services.scaler.domain.ensemble import forecast
    from services.scaler.domain.series import Seasons

    seasons, rounds = Seasons.for_bucket(3600), []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for history in histories:
            forecast(history, HORIZON, seasons)
        rounds.append(time.perf_counter() - started)
    return rounds


def synthetic_holdout(histories: list[np.ndarray]) -> tuple[float, float]:
    """Mean sMAPE of the last day's forecast from the first 29 days: ensemble, seasonal naive."""
    from services.scaler.domain.ensemble import forecast
    from services.scaler.domain.predictors import seasonal_naive
    from services.scaler.domain.series import Seasons, smape

    seasons, ours, naive = Seasons.for_bucket(3600), [], []
    for history in histories:
        train, test = history[:-HORIZON], history[-HORIZON:]
        ours.append(smape(test, forecast(train, HORIZON, seasons).values))
        naive.append(smape(test, seasonal_naive(train, [len(train)], HORIZON, seasons)[0]))
    return float(np.mean(ours)), float(np.mean(naive))


def trace_backtest(name: str, bucket_s: int) -> tuple[float, float, int]:
    """Rolling-origin back-test over the trace's last quarter: mean sMAPE of ensemble, naive; origins."""
    from services.scaler.domain.ensemble import forecast
    from services.scaler.domain.predictors import seasonal_naive
    from services.scaler.domain.series import Seasons, smape

    series, seasons = trace_series(name, bucket_s), Seasons(TRACE_DAY_BUCKETS, TRACE_WEEK_BUCKETS)
    ours, naive = [], []
    for origin in range(len(series) - len(series) // 4, len(series) - TRACE_HORIZON + 1):
        train, test = series[:origin], series[origin : origin + TRACE_HORIZON]
        ours.append(smape(test, forecast(train, TRACE_HORIZON, seasons).values))
        naive.append(smape(test, seasonal_naive(train, [origin], TRACE_HORIZON, seasons)[0]))
    return float(np.mean(ours)), float(np.mean(naive)), len(ours)


def main() -> None:
    """Run the benchmark and print its figures; the last line is JSON."""
    figures: dict[str, Any] = {"forecast_cold_s": round(cold_start(), 3)}
    histories = synthetic_hourly(MODELS, DAYS, SEED)
    rounds = forecast_rounds(histories)
    figures["forecast_all_s"] = round(statistics.median(rounds), 3)
    print(f"first forecast in a fresh process (imports included): {figures['forecast_cold_s']:.3f} s")
    print(f"{MODELS} models x {DAYS * 24} hourly points, horizon {HORIZON} h, back-test included, "
          f"{ROUNDS} warm rounds: " + ", ".join(f"{r:.3f} s" for r in rounds))  # fmt: skip
    ours, naive = synthetic_holdout(histories)
    figures |= {"smape_synthetic_ensemble": round(ours, 4), "smape_synthetic_naive": round(naive, 4)}
    print(f"synthetic last-day hold-out, mean sMAPE: ensemble {ours:.4f}, seasonal naive {naive:.4f}")
    per_trace: dict[str, tuple[float, float]] = {}
    for bucket_s in TRACE_BUCKETS_S:
        for name in TRACE_FILES:
            ours, naive, origins = trace_backtest(name, bucket_s)
            label = f"{name.removeprefix('AzureLLMInferenceTrace_').removesuffix('.csv')}_{bucket_s}s"
            per_trace[label] = (ours, naive)
            print(f"Azure {label}: {origins} origins, {TRACE_HORIZON}-bucket horizon, mean sMAPE "
                  f"ensemble {ours:.4f}, seasonal naive {naive:.4f}")  # fmt: skip
    # The headline: both traces at 60 s buckets, each trace weighted alike.
    headline = [v for k, v in per_trace.items() if k.endswith("_60s")]
    figures["smape_ensemble"] = round(float(np.mean([o for o, _ in headline])), 4)
    figures["smape_naive"] = round(float(np.mean([n for _, n in headline])), 4)
    for label, (ours, naive) in per_trace.items():
        figures[f"smape_{label}_ensemble"], figures[f"smape_{label}_naive"] = round(ours, 4), round(naive, 4)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
