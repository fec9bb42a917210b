"""Demand series for the scaler's forecast tests and benchmark: Azure LLM traces and synthetic histories."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np

TRACES = Path(__file__).resolve().parent.parent / "data" / "traces" / "azure_llm_2023"
TRACE_FILES = ("AzureLLMInferenceTrace_code.csv", "AzureLLMInferenceTrace_conv.csv")


def trace_arrivals(name: str) -> list[float]:
    """Arrival times (epoch seconds) of one Azure LLM 2023 trace file."""
    with (TRACES / name).open(newline="") as handle:
        return [datetime.fromisoformat(row["TIMESTAMP"][:26]).timestamp() for row in csv.DictReader(handle)]


def trace_series(name: str, bucket_s: int) -> np.ndarray:
    """Requests per bucket of one trace, from its first arrival; the partial last bucket dropped."""
    arrivals = np.asarray(trace_arrivals(name))
    index = ((arrivals - arrivals.min()) // bucket_s).astype(int)
    counts = np.bincount(index).astype(np.float64)
    return counts[:-1]


def synthetic_hourly(models: int, days: int, seed: int) -> list[np.ndarray]:
    """Hourly request histories with daily and weekly seasonality, trend and noise (seeded)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(days * 24, dtype=np.float64)
    histories = []
    for _ in range(models):
        base = rng.uniform(20, 5000)
        daily = 1 + rng.uniform(0.3, 0.8) * np.sin(2 * np.pi * (hours - rng.uniform(0, 24)) / 24)
        weekly = 1 + rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * hours / 168)
        trend = 1 + rng.uniform(-0.2, 0.4) * hours / hours[-1]
        mean = base * daily * weekly * trend
        histories.append(rng.poisson(mean * rng.lognormal(0, 0.1, len(hours))).astype(np.float64))
    return histories
