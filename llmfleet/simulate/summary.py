"""Every figure of a simulation, from its runs alone (pure: runs in, a JSON-able dict out).

SLO attainment counts a rejected request as a miss: within / (served + rejected). The busy hours
are the third of the hours with the most arrivals. A model-hour's p95 needs at least
`MIN_MODEL_HOUR` requests (a handful of requests has no meaningful 95th percentile).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

from llmfleet.simulate.build import Prepared
from llmfleet.simulate.metrics import Accounts, percentile
from llmfleet.simulate.options import REGIONS
from llmfleet.simulate.runs import RunResult

MIN_MODEL_HOUR = 100
ACTION_KEYS = ("action_scale_up", "action_scale_down", "action_preload", "action_unload")


def busy_hours(accounts: Accounts) -> np.ndarray:
    """Indices of the busiest third of the hours (by arrivals)."""
    arrived = accounts.arrived.sum(axis=1)
    count = max(1, round(len(arrived) / 3))
    return np.sort(np.argsort(-arrived)[:count])


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 5) if whole > 0 else None


def run_figures(run: RunResult) -> dict[str, Any]:
    """The figures of one run (policy or baseline)."""
    a = run.accounts
    served, rejected = float(a.served.sum()), float(a.rejected.sum())
    counted = served + rejected
    p95 = a.p95_model_hours()
    p95 = np.where(a.served >= MIN_MODEL_HOUR, p95, np.nan)
    busy = busy_hours(a)
    gpu_hours = float(a.allocated_gpu_s.sum()) / 3600
    worst = np.unravel_index(int(np.nanargmax(p95)), p95.shape) if np.isfinite(p95).any() else None
    model_ids = [m.model_id for m in run.models]
    return {
        "name": run.name,
        "requests": {
            "arrived": round(float(a.arrived.sum())),
            "served": round(served),
            "rejected": round(rejected),
            "queued_at_end": round(run.queued_at_end),
            "held_at_end": round(run.held_at_end),
        },
        "slo_attainment": _share(float(a.within_slo.sum()), counted),
        "slo_misses": slo_misses(a),
        "slo_by_model_group": slo_by_group(run),
        "within_model_target": _share(float(a.within_target.sum()), counted),
        "p95_ms": round(percentile(a.hist.sum(axis=(0, 1)), 0.95) * 1000, 1),
        "p95_ms_worst_model_hour": None if worst is None else round(float(p95[worst]) * 1000, 1),
        "worst_model_hour": None if worst is None else {"model": model_ids[worst[1]], "hour": int(worst[0])},
        "p95_ms_median_model_hour": round(float(np.nanmedian(p95)) * 1000, 1) if np.isfinite(p95).any() else None,
        "model_hours_over_slo": int(np.nansum(p95 > run.options.slo_ms / 1000)),
        "utilization": _share(float(a.busy_gpu_s.sum()), float(a.allocated_gpu_s.sum())),
        "utilization_busy_hours": _share(float(a.busy_gpu_s[busy].sum()), float(a.allocated_gpu_s[busy].sum())),
        "gpu_hours": round(gpu_hours, 1),
        "cost_usd": round(float(a.dollars.sum()), 2),
        "counts": {k: round(v, 1) for k, v in sorted(run.counts.items())},
        "scaling_actions": int(sum(run.counts.get(k, 0) for k in ACTION_KEYS)),
        "alerts_fired": dict(sorted(run.alerts.items())),
        "allocation_failures": int(run.counts.get("allocation_failed", 0)),
        "allocation_failure_examples": run.failures[:5],
        "wall_s": round(run.wall_s, 2),
    }


def slo_misses(a: Accounts) -> dict[str, float | None]:
    """The requests that missed the SLO, as shares of all counted, by cause (they sum to 1 - attainment).

    A served request is put to the first cause that alone breaks the SLO (`Accounts.misses`);
    a rejected one (held too long for a cold start, or over the admission limits) is "rejected".
    """
    counted = float(a.served.sum() + a.rejected.sum())
    result = {cause: _share(float(missed.sum()), counted) for cause, missed in a.missed.items()}
    result["rejected"] = _share(float(a.rejected.sum()), counted)
    return result


def slo_by_group(run: RunResult) -> dict[str, dict[str, float | None]]:
    """SLO attainment and each cause's misses per model group (request kind x size), as shares of the group."""
    a = run.accounts
    groups: dict[str, list[int]] = {}
    for m, model in enumerate(run.models):
        groups.setdefault(f"{model.kind}-{model.size}", []).append(m)
    result = {}
    for name, rows in sorted(groups.items()):
        counted = float(a.served[:, rows].sum() + a.rejected[:, rows].sum())
        figures = {"requests": round(counted), "slo_attainment": _share(float(a.within_slo[:, rows].sum()), counted)}
        figures |= {cause: _share(float(missed[rows].sum()), counted) for cause, missed in a.missed.items()}
        figures["rejected"] = _share(float(a.rejected[:, rows].sum()), counted)
        result[name] = figures
    return result


def per_model(run: RunResult) -> list[dict[str, Any]]:
    """Each model's requests, SLO shares and worst hour."""
    a = run.accounts
    p95 = np.where(a.served >= MIN_MODEL_HOUR, a.p95_model_hours(), np.nan)
    rows = []
    for m, model in enumerate(run.models):
        counted = float(a.served[:, m].sum() + a.rejected[:, m].sum())
        rows.append(
            {
                "model": model.model_id,
                "size": model.size,
                "kind": model.kind,
                "target_ms": model.target_ms,
                "requests": round(float(a.arrived[:, m].sum())),
                "slo_attainment": _share(float(a.within_slo[:, m].sum()), counted),
                "within_target": _share(float(a.within_target[:, m].sum()), counted),
                "p95_ms_worst_hour": round(float(np.nanmax(p95[:, m])) * 1000, 1)
                if np.isfinite(p95[:, m]).any()
                else None,
                "instance_gpu_hours": round(float(a.instance_gpu_s[m]) / 3600, 1),
            }
        )
    return rows


def headline(
    policy: dict[str, Any], baselines: dict[str, dict[str, Any]], wall_s: float, day_s: float
) -> dict[str, Any]:
    """The benchmark's figures: the policy run against the baselines."""

    def ratio(key: str, other: str) -> float | None:
        base = baselines.get(other, {}).get(key)
        return round(policy[key] / base, 4) if base else None

    return {
        "sim_day_s": round(wall_s * 86_400 / day_s, 2),
        "requests": policy["requests"]["arrived"],
        "slo_attainment": policy["slo_attainment"],
        "p95_ms_worst_model_hour": policy["p95_ms_worst_model_hour"],
        "utilization_busy_hours": policy["utilization_busy_hours"],
        "gpu_hours_vs_oracle": ratio("gpu_hours", "oracle"),
        "gpu_hours_vs_static": ratio("gpu_hours", "static_peak"),
        "cost_vs_on_demand": ratio("cost_usd", "on_demand"),
    }


def options_dict(run: RunResult) -> dict[str, Any]:
    """The run's options as JSON values."""
    raw = dataclasses.asdict(run.options)
    raw["workload"]["trace"] = [str(p) for p in run.options.workload.trace]
    return {k: (v.value if hasattr(v, "value") else v) for k, v in raw.items()}


def workload_figures(prepared: Prepared) -> dict[str, Any]:
    """What was simulated: models, regions, requests, lengths, fleet."""
    traffic = prepared.traffic
    by_region = traffic.arrivals.sum(axis=(0, 1))
    return {
        "models": len(traffic.models),
        "hours": round(traffic.steps * traffic.step_s / 3600, 2),
        "requests": round(float(traffic.arrivals.sum())),
        "requests_by_region": {r: round(float(v)) for r, v in zip(REGIONS, by_region, strict=True)},
        "fleet_gpus": sum(p.total for p in prepared.fleet.pools),
        "allocatable_gpus": sum(p.available for p in prepared.fleet.pools),
        "reserved_commitment_gpus": int(prepared.reserved.sum()),
        "sizes": dict(sorted(Counter(m.size for m in traffic.models).items())),
        "kinds": dict(sorted(Counter(m.kind for m in traffic.models).items())),
    }


def build_summary(
    policy: RunResult, baselines: dict[str, RunResult], comparison: list[RunResult], prepared: Prepared
) -> dict[str, Any]:
    """The whole summary (summary.json)."""
    figures = run_figures(policy)
    base = {name: run_figures(run) for name, run in baselines.items()}
    hours = prepared.traffic.steps * prepared.traffic.step_s
    return {
        "config": options_dict(policy),
        "workload": workload_figures(prepared),
        "headline": headline(figures, base, policy.wall_s, hours),
        "policy": figures,
        "baselines": base,
        "comparison": [run_figures(run) for run in comparison],
        "models": per_model(policy),
        "series": policy.accounts.series,
        "baseline_series": {name: run.accounts.series for name, run in baselines.items()},
    }
