"""Scaler benchmark: forecast 50 models with 30 days of hourly history, back-test on the Azure traces.

`python -m benchmarks.scaler` (or `make bench-scaler`). Prints readable lines; the last line is one
JSON object. Timings are wall-clock on this machine: `forecast_cold_s` is the first forecast in
a fresh process (imports included), `forecast_all_s` the median of three warm rounds of all 50.
The ensemble, seasonal naive and the statsforecast peers (AutoETS, MSTL, CrostonOptimized) are
scored on the same windows: MASE, sMAPE, pinball loss at the provisioning quantile, fit time.
"""

from __future__ import annotations

import importlib
import json
import statistics
import time
from typing import Any

import numpy as np

from benchmarks import scaler_peers
from benchmarks.scaler_data import TRACE_FILES, synthetic_hourly, trace_series
from benchmarks.scaler_scoring import Forecaster, Window, ensemble, naive, rolling_windows, score
from services.scaler.domain.series import Seasons

MODELS, DAYS, HORIZON, ROUNDS, SEED = 50, 30, 24, 3, 20261127
TRACE_BUCKETS_S = (30, 60)
TRACE_DAY_BUCKETS, TRACE_WEEK_BUCKETS, TRACE_HORIZON = 10, 30, 3  # a time-compressed "day" of 10 buckets
HEADLINE = ("code_60s", "conv_60s")  # both traces at 60 s buckets, each trace weighted alike
Sets = dict[str, tuple[list[Window], Seasons]]
Board = dict[str, dict[str, dict[str, float]]]  # set -> forecaster -> measure -> value


def cold_start() -> float:
    """Seconds to import the forecasting code and make the first forecast in this process."""
    started = time.perf_counter()
    ensemble_module = importlib.import_module("services.scaler.domain.ensemble")
    series = importlib.import_module("services.scaler.domain.series")
    ensemble_module.forecast(synthetic_hourly(1, DAYS, SEED + 1)[0], HORIZON, series.Seasons.for_bucket(3600))
    return time.perf_counter() - started


def forecast_rounds(histories: list[np.ndarray]) -> list[float]:
    """Seconds for each warm round of forecasting every history."""
    from services.scaler.domain.ensemble import forecast

    seasons, rounds = Seasons.for_bucket(3600), []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for history in histories:
            forecast(history, HORIZON, seasons)
        rounds.append(time.perf_counter() - started)
    return rounds


def window_sets(histories: list[np.ndarray]) -> Sets:
    """The synthetic last-day hold-outs and each trace's rolling origins over its last quarter."""
    sets: Sets = {"synthetic": ([(h[:-HORIZON], h[-HORIZON:]) for h in histories], Seasons.for_bucket(3600))}
    for bucket_s in TRACE_BUCKETS_S:
        for name in TRACE_FILES:
            label = f"{name.removeprefix('AzureLLMInferenceTrace_').removesuffix('.csv')}_{bucket_s}s"
            windows = rolling_windows(trace_series(name, bucket_s), TRACE_HORIZON)
            sets[label] = (windows, Seasons(TRACE_DAY_BUCKETS, TRACE_WEEK_BUCKETS))
    return sets


def scoreboard(forecasters: dict[str, Forecaster], sets: Sets) -> Board:
    """Every forecaster on every set of windows, printed as it goes."""
    board: Board = {}
    for label, (windows, seasons) in sets.items():
        print(f"{label}: {len(windows)} windows, horizon {len(windows[0][1])} buckets "
              "(MASE of median / mean, sMAPE of mean, pinball and coverage of q0.9, fit ms per window)")  # fmt: skip
        board[label] = {}
        for name, forecaster in forecasters.items():
            s = board[label][name] = score(forecaster, windows, seasons).summary()
            print(f"  {name:9s} MASE {s['mase']:.4f} / {s['mase_mean']:.4f}  sMAPE {s['smape']:.4f}  "
                  f"pinball {s['pinball']:.4f}  covered {s['coverage']:.2f}  fit {s['fit_ms']:.2f} ms")  # fmt: skip
    return board


def headline(board: Board, name: str, measure: str) -> float:
    """The mean of one measure over the headline traces."""
    return round(float(np.mean([board[label][name][measure] for label in HEADLINE])), 4)


def headline_figures(board: Board) -> dict[str, Any]:
    """The flat figures of the JSON line (headline: both traces at 60 s), then the whole scoreboard."""
    figures: dict[str, Any] = {
        "smape_synthetic_ensemble": board["synthetic"]["ensemble"]["smape"],
        "smape_synthetic_naive": board["synthetic"]["naive"]["smape"],
    }
    for measure in ("smape", "mase", "pinball"):
        for name in ("ensemble", "naive"):
            figures[f"{measure}_{name}"] = headline(board, name, measure)
    figures["mase_ensemble_mean"] = headline(board, "ensemble", "mase_mean")
    figures["fit_ms_ensemble"] = headline(board, "ensemble", "fit_ms")
    for peer in scaler_peers.PEERS:
        for measure in ("mase", "pinball", "fit_ms"):
            figures[f"{measure}_{peer}"] = headline(board, peer, measure)
    figures["best_peer"] = min(scaler_peers.PEERS, key=lambda peer: figures[f"mase_{peer}"])
    for label in (k for k in board if k != "synthetic"):
        for name in ("ensemble", "naive"):
            figures[f"smape_{label}_{name}"] = board[label][name]["smape"]
    return figures | {"scores": board}


def main() -> None:
    """Run the benchmark and print its figures; the last line is JSON."""
    figures: dict[str, Any] = {"forecast_cold_s": round(cold_start(), 3)}
    histories = synthetic_hourly(MODELS, DAYS, SEED)
    rounds = forecast_rounds(histories)
    figures["forecast_all_s"] = round(statistics.median(rounds), 3)
    print(f"first forecast in a fresh process (imports included): {figures['forecast_cold_s']:.3f} s")
    print(f"{MODELS} models x {DAYS * 24} hourly points, horizon {HORIZON} h, back-test included, "
          f"{ROUNDS} warm rounds: " + ", ".join(f"{r:.3f} s" for r in rounds))  # fmt: skip
    peers, imported = scaler_peers.load()
    sets = window_sets(histories)
    first = scaler_peers.first_calls(peers, sets["synthetic"][0][0], sets["synthetic"][1])
    print(
        f"statsforecast: first import {imported:.2f} s, first fit "
        + ", ".join(f"{k} {v:.3f} s" for k, v in first.items())
    )
    board = scoreboard({"ensemble": ensemble, "naive": naive, **peers}, sets)
    figures |= {"statsforecast_import_s": round(imported, 3), **headline_figures(board)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
