"""Simulator benchmark: one simulated day at seed scale with the services' own policies (`make bench-simulator`).

100M requests a day over 50 models in 3 regions on a 10,000-GPU fleet (docs/simulator.md). The
default policy run, its three baselines (oracle, static peak, all on demand) and, unless
`--no-compare`, the comparison (every scaling policy; tiers and preload off). `sim_day_s` is the
wall time of the policy run (forecasts included) scaled to one day, on this machine's shared
cores, so it is noisy. The report goes to reports/bench-simulator-<time>/. Last line: one JSON object.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from llmfleet.simulate import SimOptions, run
from llmfleet.simulate.report import write_report


def main(compare: bool = True) -> None:
    """Run the day, print the tables as lines, the headline JSON last."""
    result = run(SimOptions(), baselines=True, compare=compare)
    folder = Path("reports") / f"bench-simulator-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    summary = write_report(result, folder)
    work = summary["workload"]
    print(f"workload: {work['requests']:,} requests, {work['models']} models, {work['hours']:g} h", end=", ")
    print(f"{work['fleet_gpus']:,} GPUs ({work['allocatable_gpus']:,} allocatable)")
    runs = [summary["policy"], *summary["baselines"].values(), *summary["comparison"]]
    for r in runs:
        print(
            f"{r['name']:<32} GPU-h {r['gpu_hours']:>9,.0f}  ${r['cost_usd']:>10,.0f}  SLO {r['slo_attainment']:.4f}"
            f"  target {r['within_model_target']:.4f}  worst model-hour p95 {r['p95_ms_worst_model_hour']:,.0f} ms"
            f"  util {r['utilization']:.3f} (busy h {r['utilization_busy_hours']:.3f})"
            f"  cold starts {r['counts'].get('cold_starts', 0):,.0f}  wall {r['wall_s']:.1f} s"
        )
    print(f"report: {folder}")
    print(json.dumps(summary["headline"]))


if __name__ == "__main__":
    main(compare="--no-compare" not in sys.argv[1:])
