"""Whole runs on the small scenario: requests conserved, baselines in order, cold starts held, reports written."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from llmfleet.simulate import Pricing, Workload, run
from llmfleet.simulate.baselines import oracle, static_peak
from llmfleet.simulate.build import Prepared, prepare
from llmfleet.simulate.metrics import EDGES
from llmfleet.simulate.options import SimOptions
from llmfleet.simulate.report import write_report
from llmfleet.simulate.runs import RunResult, run_policy
from tests.unit.simulate.conftest import small_options


def conserved(result: RunResult) -> None:
    a = result.accounts
    arrived = a.arrived.sum()
    accounted = a.served.sum() + a.rejected.sum() + result.queued_at_end + result.held_at_end
    assert arrived > 0
    assert accounted == pytest.approx(arrived, rel=1e-9)


def test_every_request_is_served_rejected_or_still_waiting(prepared: Prepared, options: SimOptions):
    result = run_policy(prepared, options)
    conserved(result)
    assert result.accounts.served.sum() > 0.99 * result.accounts.arrived.sum()
    assert result.counts.get("spot_reclaims", 0) > 0  # mixed pricing buys spot, and the cloud takes some back


def test_requests_for_a_model_nobody_serves_wait_for_its_cold_start(tmp_path: Path):
    path = tmp_path / "fresh-model.csv"
    stamps = [f"2024-01-01 00:{s // 60:02d}:{s % 60:02d}.0000000,500,20" for s in range(0, 600, 2)]
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(stamps) + "\n")
    # No warm-up: no forecast, no tier preload; the router's hold asks for the model (ModelRequested).
    options = small_options(workload=Workload(trace=(path,), warmup_days=0))
    prepared = prepare(options)
    result = run_policy(prepared, options)
    conserved(result)
    assert result.counts["cold_starts"] >= 1 and result.counts["rule_cold_start"] >= 1
    assert result.accounts.rejected.sum() == 0  # the load (~26 s) is well inside the router's 120 s hold
    cold = float(prepared.table.cold_start_s[0])
    waited = result.accounts.hist[0, 0, np.searchsorted(EDGES, cold / 2) :].sum()
    assert 5 <= waited <= 20  # the requests of the load's ~26 s (one per 2 s) waited for it, the rest did not


def test_the_oracle_uses_least_and_static_peak_most_gpu_hours():
    options = small_options(duration_s=12 * 3600, step_s=20.0)
    prepared = prepare(options)
    policy = run_policy(prepared, options).accounts.allocated_gpu_s.sum()
    best = oracle(prepared, options).accounts.allocated_gpu_s.sum()
    peak = static_peak(prepared, options).accounts.allocated_gpu_s.sum()
    assert best <= policy <= peak


def test_on_demand_pricing_costs_more_than_the_mix(prepared: Prepared, options: SimOptions):
    mixed = run_policy(prepared, options)
    on_demand = run_policy(prepared, replace(options, pricing=Pricing.ON_DEMAND))
    assert on_demand.counts.get("spot_reclaims", 0) == 0
    mixed_per_gpu_hour = mixed.accounts.dollars.sum() / mixed.accounts.allocated_gpu_s.sum()
    on_demand_per_gpu_hour = on_demand.accounts.dollars.sum() / on_demand.accounts.allocated_gpu_s.sum()
    assert mixed_per_gpu_hour < on_demand_per_gpu_hour


def test_a_small_run_writes_the_report(tmp_path: Path):
    result = run(small_options(duration_s=3600), baselines=True, compare=False)
    summary = write_report(result, tmp_path)
    for name in ("summary.json", "report.md", "capacity.png", "latency.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert set(saved["headline"]) == {
        "sim_day_s", "requests", "slo_attainment", "p95_ms_worst_model_hour", "utilization_busy_hours",
        "gpu_hours_vs_oracle", "gpu_hours_vs_static", "cost_vs_on_demand",
    }  # fmt: skip
    assert set(saved["baselines"]) == {"oracle", "static_peak", "on_demand"}
    assert saved["headline"]["requests"] == summary["policy"]["requests"]["arrived"] > 0
    assert "## Against the baselines" in (tmp_path / "report.md").read_text()


def test_reactive_only_holds_the_last_hour_seen_and_still_conserves(prepared: Prepared, options: SimOptions):
    """Reactive only: the scaler's 'forecast' is the last complete hour it observed, with full confidence."""
    from datetime import timedelta

    from llmfleet.simulate.scaler import ForecastCache
    from services.scaler.domain.ensemble import PROVISION_QUANTILE
    from services.scaler.domain.series import bucket_index

    cache: ForecastCache = prepared.forecasts
    now = prepared.traffic.start + timedelta(minutes=30)
    key = next(iter(sorted(cache.keys(now))))
    held = cache.last_seen(key, now)
    last = cache.counts[key][bucket_index(now, cache.settings.bucket_s) - 1]
    assert held.confidence == 1.0 and set(held.values) == {last} and last > 0
    assert list(held.quantile(PROVISION_QUANTILE)) == list(held.values)
    result = run_policy(prepared, replace(options, forecast=False))
    assert result.name == f"{options.policy.value} reactive (no forecast)"
    conserved(result)
