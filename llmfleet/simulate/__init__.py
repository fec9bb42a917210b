"""`llmfleet simulate`: a seed-scale fleet simulator that runs the services' own policies in virtual time.

    result = run(SimOptions())            # the policy run and its three baselines
    result = run(SimOptions(), compare=True)  # and the policies / tiers / preload side by side
    write_report(result, folder)          # report.md, summary.json, plots

See docs/simulator.md for the model, the workload mapping and what it measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from llmfleet.simulate.baselines import oracle, static_peak
from llmfleet.simulate.build import Prepared, prepare
from llmfleet.simulate.options import LatencyMeasure, Pricing, SimOptions, Workload
from llmfleet.simulate.runs import RunResult, run_policy
from llmfleet.simulate.summary import build_summary
from services.scaler.domain.policy import PolicyName

__all__ = ["LatencyMeasure", "Pricing", "SimOptions", "Simulation", "Workload", "run", "variants"]


@dataclass
class Simulation:
    """A policy run, its baselines, the comparison runs, and the summary of them all."""

    prepared: Prepared
    policy: RunResult
    baselines: dict[str, RunResult] = field(default_factory=dict)
    comparison: list[RunResult] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def variants(options: SimOptions) -> list[SimOptions]:
    """The comparison: each scaling policy, the chosen one with tiers and / or preload off, and reactive only."""
    policies = [replace(options, policy=p, tiers=True, preload=True, label="") for p in PolicyName]
    switches = [(False, True), (True, False), (False, False)]
    reactive = replace(options, forecast=False, label="")
    return [*policies, *(replace(options, tiers=t, preload=p, label="") for t, p in switches), reactive]


def run(options: SimOptions, baselines: bool = True, compare: bool = False) -> Simulation:
    """Prepare the workload once, run the policy (and baselines, and the comparison) on it."""
    prepared = prepare(options)
    policy = run_policy(prepared, options)
    result = Simulation(prepared, policy)
    if baselines:
        result.baselines = {
            "oracle": oracle(prepared, options),
            "static_peak": static_peak(prepared, options),
            "on_demand": run_policy(prepared, replace(options, pricing=Pricing.ON_DEMAND, label="all on demand")),
        }
    if compare:
        same = replace(options, label="")
        result.comparison = [policy if v == same else run_policy(prepared, v) for v in variants(options)]
    result.summary = build_summary(result.policy, result.baselines, result.comparison, prepared)
    return result
