"""The seed's workload: totals, Zipf popularity, time-zone-shifted peaks, lengths from the traces, replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmfleet.simulate.build import trace_models
from llmfleet.simulate.catalogue import catalogue, zipf_shares
from llmfleet.simulate.options import REGIONS, UTC_OFFSET_H, LatencyMeasure, SimOptions, Workload
from llmfleet.simulate.workload import Traffic, read_lengths, seed_traffic, trace_traffic
from llmfleet.trace import BUILTIN_TRACES

SEED = 11


@pytest.fixture(scope="module")
def day() -> Traffic:
    """One day of the seed's 100M requests over 50 models."""
    workload = Workload()
    return seed_traffic(catalogue(workload, LatencyMeasure.TTFT, SEED), workload, 86_400.0, 10.0, SEED)


def test_a_day_holds_the_seeds_requests(day):
    total = day.arrivals.sum()
    # Day-to-day levels vary by a lognormal of sigma 0.06 per model: the day lands within a few percent.
    assert 0.95e8 < total < 1.05e8
    assert day.arrivals.shape == (8640, 50, 3)


def test_popularity_follows_zipf(day):
    per_model = day.arrivals.sum(axis=(0, 2))
    expected = zipf_shares(50, Workload().zipf)
    assert np.allclose(per_model / per_model.sum(), expected, rtol=0.25)
    assert per_model[0] > 10 * per_model[-1]  # heavy-tailed: the top model dwarfs the last


def test_each_regions_peak_follows_its_local_afternoon(day):
    hourly = day.arrivals.reshape(24, 360, 50, 3).sum(axis=(1, 2))  # [UTC hour, region]
    for r, offset in enumerate(UTC_OFFSET_H):
        peak_utc = int(np.argmax(hourly[:, r]))
        local = (peak_utc + offset) % 24
        assert 12 <= local <= 18, (REGIONS[r], peak_utc, local)
        assert hourly[:, r].max() > 2 * hourly[:, r].min()


def test_regions_split_like_the_seeds_gpu_pools(day):
    shares = day.arrivals.sum(axis=(0, 1)) / day.arrivals.sum()
    assert np.allclose(shares, [0.5, 0.3, 0.2], atol=0.05)


def test_warm_up_is_a_week_of_hourly_counts_of_the_same_size(day):
    assert day.warmup.shape == (7 * 24, 50, 3)
    assert 0.8e8 < day.warmup.sum() / 7 < 1.1e8  # a weekend is quieter


def test_lengths_are_the_traces_rows(day):
    code, _ = read_lengths(BUILTIN_TRACES["azure-llm-2023"]["azure-code"])
    for model, lengths, sample in zip(day.models, day.lengths, day.samples, strict=True):
        if model.kind == "code":
            assert lengths.prompt.mean() == pytest.approx(code.prompt.mean())
        assert set(sample.prompt) <= set(lengths.prompt)


def test_the_same_seed_repeats_and_another_differs():
    workload = Workload(requests_per_day=1e6, models=4, warmup_days=1)
    models = catalogue(workload, LatencyMeasure.TTFT, SEED)
    a = seed_traffic(models, workload, 3600.0, 10.0, SEED)
    b = seed_traffic(models, workload, 3600.0, 10.0, SEED)
    c = seed_traffic(models, workload, 3600.0, 10.0, SEED + 1)
    assert np.array_equal(a.arrivals, b.arrivals)
    assert not np.array_equal(a.arrivals, c.arrivals)


def test_a_user_trace_replays_as_it_is(tmp_path: Path):
    path = tmp_path / "my-model.csv"
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    rows += [f"2024-01-01 00:00:{s:02d}.0000000,{100 + s},{5 + s}" for s in (0, 0, 3, 25, 59)]
    path.write_text("\n".join(rows) + "\n")
    workload = Workload(trace=(path,), warmup_days=1)
    models = trace_models({"my-model": path}, SimOptions(workload=workload))
    traffic = trace_traffic(models, {"my-model": path}, workload, 10.0, SEED)
    region = REGIONS.index(workload.trace_region)
    assert traffic.arrivals.sum() == 5 == traffic.arrivals[:, 0, region].sum()
    assert list(traffic.arrivals[:, 0, region]) == [3, 0, 1, 0, 0, 1]  # 10 s steps over its 59 s
    assert sorted(traffic.lengths[0].prompt) == [100, 100, 103, 125, 159]
    assert models[0].model_id == "my-model"
