"""Fleet-loop benchmark (issue 15): each fleet mechanism on and off, through the simulator (`make bench-fleet-loop`).

The seed-scale day of `make bench-simulator` (100M requests, 50 models, 3 regions, 10,000 GPUs,
the services' own policies; docs/simulator.md). The whole loop is: the MILP re-plan every hour
(`placement.milp_place`: least $/h serving each model's work, on the GPU types whose first token
meets the SLO; greedy when HiGHS runs out of its 1 s), deployment plans (each model at the
planner's best single-GPU quantisation, its GPUs per instance from `gpu_share`), the cost
service's mix (reserved commitment + spot within the interruption tolerance), spot reclaims
handled with the 2-minute notice (replacement at the notice, make-before-break, drain), and the
scaler's headroom for bursts (capacity counted over each model's p95 10 s burst). Each variant
turns one mechanism off (or changes the reclaim rate or the headroom); the reference is all on
demand, greedy, fp16, as the platform runs today. Every run's SLO misses are put to a cause
(service time, cold start, queueing, rejected), and the loop's per model group. The runs go to
two worker processes. `--hours N` runs a shorter day (said in the output).
Last line: one JSON object.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from dataclasses import replace
from typing import Any

from llmfleet.simulate.build import Prepared, prepare
from llmfleet.simulate.options import Placement, Pricing, SimOptions
from llmfleet.simulate.runs import run_policy
from llmfleet.simulate.summary import run_figures

GOAL_COST = 0.60  # >= 40% less than all on demand
GOAL_SLO = 0.99
NOTICE_S = 120.0  # AWS spot interruption notice
RATES = (0.3, 0.5, 0.7)  # spot reclaims per instance-hour
BURST_QUANTILE = 0.95  # the loop's scaler headroom: capacity counted over each model's p95 10 s burst
FRONTIER = (0.0, 0.99)  # other headroom settings measured (0: none, the live scaler's capacity)
WORKERS = max(1, min(2, os.cpu_count() or 1))  # the benchmark machine's 2 cores


def loop_options(base: SimOptions) -> SimOptions:
    """The whole loop on: MILP re-plans (off types too slow for the SLO), plans, the cost mix, reclaims
    handled at 0.5 per instance-hour, and the scaler's headroom for bursts."""
    return replace(
        base, placement=Placement.MILP, plans=True, pricing=Pricing.MIXED, reclaim_notice_s=NOTICE_S,
        spot_reclaims_per_hour=0.5, slo_types=True, burst_quantile=BURST_QUANTILE, label="the loop (all on)",
    )  # fmt: skip


def variants(base: SimOptions) -> list[tuple[str, SimOptions]]:
    """(key, options) of every run: the reference, the loop, and the loop with one thing changed."""
    loop = loop_options(base)
    reference = replace(base, pricing=Pricing.ON_DEMAND, label="all on demand (greedy, fp16): reference")
    return [
        ("reference", reference),
        ("loop", loop),
        ("greedy", replace(loop, placement=Placement.GREEDY, label="loop, greedy placement (MILP off)")),
        ("fp16", replace(loop, plans=False, label="loop, fp16 only (plans off)")),
        ("on_demand", replace(loop, pricing=Pricing.ON_DEMAND, label="loop, all on demand (cost mix off)")),
        ("no_notice", replace(loop, reclaim_notice_s=0.0, label="loop, reclaims not handled (no notice)")),
        *[
            (f"headroom_{q:g}", replace(loop, burst_quantile=q, label=f"loop, headroom at burst quantile {q:g}"))
            for q in FRONTIER
        ],
        *[
            (f"spot_{rate}", replace(loop, spot_reclaims_per_hour=rate, label=f"loop, {rate} reclaims/instance-h"))
            for rate in RATES
            if rate != loop.spot_reclaims_per_hour
        ],
        ("milp_fp16_on_demand", replace(reference, placement=Placement.MILP, label="all on demand, fp16, MILP")),
        ("today", replace(base, label="today: greedy, fp16, cost mix, reclaims not handled")),
    ]


def figures(key: str, result: dict[str, Any], reference_cost: float) -> dict[str, Any]:
    """One variant's figures for the table and the JSON line."""
    counts = result["counts"]
    return {
        "key": key,
        "name": result["name"],
        "cost_usd": result["cost_usd"],
        "cost_vs_on_demand": round(result["cost_usd"] / reference_cost, 4) if reference_cost else None,
        "slo_attainment": result["slo_attainment"],
        "within_model_target": result["within_model_target"],
        "gpu_hours": result["gpu_hours"],
        "spot_reclaims": int(counts.get("spot_reclaims", 0)),
        "requests_lost_to_reclaims": round(counts.get("requests_lost_to_reclaims", 0.0), 1),
        "replacements": int(counts.get("replacements", 0)),
        "replacements_failed": int(counts.get("replacements_failed", 0)),
        "replans_milp": int(counts.get("replan_milp", 0)),
        "replans_greedy_fallback": int(counts.get("replan_greedy", 0)),
        "replan_s": round(counts.get("replan_s", 0.0), 2),
        "allocation_failures": result["allocation_failures"],
        "slo_misses": result["slo_misses"],
        "gpu_hours_by_class": {k[10:]: v for k, v in counts.items() if k.startswith("gpu_hours_")},
        "wall_s": result["wall_s"],
    }


def saving_pct(without: float, with_: float) -> float:
    """How much cheaper `with_` is than `without`, in percent (negative: dearer)."""
    return round(100 * (without - with_) / without, 2) if without else 0.0


def main(hours: float | None = None) -> None:
    """Every variant over the same day; the table, then the JSON line."""
    started = time.perf_counter()
    base = SimOptions() if hours is None else replace(SimOptions(), duration_s=hours * 3600)
    fp16 = prepare(base)
    planned = replace(prepare(replace(base, plans=True)), forecasts=fp16.forecasts)  # same demand, same forecasts
    if hours is not None:
        print(f"NOTE: a shorter day ({hours:g} h of the seed day), not the full 24 h")
    print("deployed quantisation (plans on):", _quantisation_mix(planned))
    _PREPARED.update(fp16=fp16, planned=planned)  # forked workers inherit them, nothing is pickled
    runs: dict[str, dict[str, Any]] = {}
    todo = variants(base)
    # One worker per core: the runs are independent and single-threaded. Forked after the day is
    # prepared, so each worker shares it; "fork" is POSIX-only, as the rest of the platform.
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        for key, result in pool.imap_unordered(_run, todo):
            runs[key] = result
            print(f"  ran {result['name']:<55} {result['wall_s']:6.1f} s", flush=True)
    runs = {key: runs[key] for key, _ in todo}  # the table in the variants' order
    reference = runs["reference"]["cost_usd"]
    rows = [figures(key, result, reference) for key, result in runs.items()]
    print()
    header = (
        f"{'variant':<56} {'cost $':>10} {'vs on-demand':>12} {'SLO':>8} {'target':>8} {'GPU-h':>9}"
        f" {'reclaims':>8} {'lost':>8} {'repl.':>6} {'alloc fail':>10}"
    )
    print(header)
    for row in rows:
        print(
            f"{row['name']:<56} {row['cost_usd']:>10,.0f} {row['cost_vs_on_demand']:>12.3f}"
            f" {row['slo_attainment']:>8.4f} {row['within_model_target']:>8.4f} {row['gpu_hours']:>9,.0f}"
            f" {row['spot_reclaims']:>8,} {row['requests_lost_to_reclaims']:>8,.0f} {row['replacements']:>6,}"
            f" {row['allocation_failures']:>10,}"
        )
    by = {row["key"]: row for row in rows}
    loop = by["loop"]
    print()
    print("SLO misses by cause, as shares of all requests (they add up to 1 - SLO):")
    for row in rows:
        misses = ", ".join(f"{k} {v:.4f}" for k, v in row["slo_misses"].items() if v is not None)
        print(f"  {row['name']:<56} {misses}")
    print()
    print("the loop, per model group (kind-size): requests, SLO, misses by cause")
    for group, f in runs["loop"]["slo_by_model_group"].items():
        causes = ", ".join(f"{k} {f[k]:.4f}" for k in ("service", "cold_start", "queueing", "rejected") if f[k])
        print(f"  {group:<9} {f['requests']:>12,} {f['slo_attainment']:.4f}  {causes}")
    headline = {
        "hours": base.duration_s / 3600,
        "cost_vs_on_demand": loop["cost_vs_on_demand"],
        "slo_attainment": loop["slo_attainment"],
        "goal_met": bool(loop["cost_vs_on_demand"] <= GOAL_COST and loop["slo_attainment"] >= GOAL_SLO),
        "goal_cost_met": bool(loop["cost_vs_on_demand"] <= GOAL_COST),
        "goal_slo_met": bool(loop["slo_attainment"] >= GOAL_SLO),
        "milp_saving_pct": saving_pct(by["greedy"]["cost_usd"], loop["cost_usd"]),
        "milp_saving_pct_fp16_on_demand": saving_pct(reference, by["milp_fp16_on_demand"]["cost_usd"]),
        "plans_saving_pct": saving_pct(by["fp16"]["cost_usd"], loop["cost_usd"]),
        "cost_mix_saving_pct": saving_pct(by["on_demand"]["cost_usd"], loop["cost_usd"]),
        "slo_misses": loop["slo_misses"],
        "slo_by_model_group": runs["loop"]["slo_by_model_group"],
        "headroom_frontier": [
            {"burst_quantile": q, **{k: by[key][k] for k in ("cost_vs_on_demand", "slo_attainment")}}
            for q, key in sorted([(BURST_QUANTILE, "loop"), *[(q, f"headroom_{q:g}") for q in FRONTIER]])
        ],
        "spot_reclaims": loop["spot_reclaims"],
        "requests_lost_to_reclaims": loop["requests_lost_to_reclaims"],
        "requests_lost_without_notice": by["no_notice"]["requests_lost_to_reclaims"],
        "spot": {
            str(rate): {
                k: by["loop" if rate == 0.5 else f"spot_{rate}"][k]
                for k in ("cost_vs_on_demand", "slo_attainment", "spot_reclaims", "requests_lost_to_reclaims")
            }
            for rate in RATES
        },
        "variants": rows,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print()
    print(json.dumps(headline))


_PREPARED: dict[str, Prepared] = {}


def _run(item: tuple[str, SimOptions]) -> tuple[str, dict[str, Any]]:
    """One variant in a worker: its figures."""
    key, options = item
    prepared = _PREPARED["planned" if options.plans else "fp16"]
    return key, run_figures(run_policy(prepared, options))


def _quantisation_mix(prepared: Prepared) -> str:
    """How many models run at each precision."""
    mix: dict[str, int] = {}
    for q in prepared.quantisations:
        mix[q] = mix.get(q, 0) + 1
    return ", ".join(f"{q}: {n}" for q, n in sorted(mix.items()))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(float(args[args.index("--hours") + 1]) if "--hours" in args else None)
