"""Cost benchmark: optimal-mix solve time (HiGHS) and one full evaluation of a large synthetic fleet.

`python -m benchmarks.cost` (make bench-cost). Seeded, bounded in count; the last line is JSON.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from services.cost.domain.cycle import Forecast, Params, evaluate
from services.cost.domain.fleet import DemandWindow, Server
from services.cost.domain.mix import compare_mix
from services.cost.domain.pricing import Catalogue, PricingClass
from services.cost.domain.rules import Pool, Thresholds

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def daily_curve(hours: int, base: float, peak: float, rng: random.Random) -> list[int]:
    """GPUs needed per hour: a diurnal sine between base and peak, with noise."""
    return [
        max(0, round(base + (peak - base) * (0.5 - 0.5 * math.cos(2 * math.pi * h / 24)) + rng.gauss(0, 1)))
        for h in range(hours)
    ]


def solve_times(hours: int, runs: int, rng: random.Random) -> tuple[list[float], float, float]:
    """Milliseconds per compare_mix, and the summed monthly cost of the rules and of the optimum."""
    price = Catalogue().price("us-east-1", "a100_80gb")
    assert price is not None
    times, rules, optimal = [], 0.0, 0.0
    for _ in range(runs):
        demand = daily_curve(hours, rng.uniform(5, 40), rng.uniform(50, 120), rng)
        pool = Pool("us-east-1", "a100_80gb", max(demand), 0, 0, rng.uniform(0.65, 0.95))
        start = time.perf_counter()
        result = compare_mix(pool, price, demand, 0.7, Thresholds())
        times.append((time.perf_counter() - start) * 1000)
        rules, optimal = rules + result.rules_per_month, optimal + result.optimal_per_month
    return times, rules, optimal


def synthetic_fleet(
    servers: int, models: int, rng: random.Random
) -> tuple[list[Server], list[DemandWindow], list[Forecast]]:
    """Servers spread over the catalogue's regions and GPU types, with demand and forecasts."""
    cat = Catalogue()
    fleet = [
        Server(
            f"s{i}",
            rng.choice(cat.regions).region,
            rng.choice(cat.gpus).gpu_type,
            rng.choice((1, 2, 4, 8)),
            rng.choice(list(PricingClass)),
            0.0,
            (f"m{i % models}",),
            rng.uniform(0.05, 0.95),
            rng.uniform(0.5, 20.0),
        )
        for i in range(servers)
    ]
    windows = [
        DemandWindow(
            f"m{m}", r.region, NOW - timedelta(hours=1), NOW, rng.randint(100, 50_000), rng.randint(10**5, 10**7)
        )
        for m in range(models)
        for r in cat.regions
    ]
    forecasts = [
        Forecast(f"m{m}", None, NOW, tuple(float(v * 500) for v in daily_curve(24, 20, 80, rng))) for m in range(models)
    ]
    return fleet, windows, forecasts


def main() -> None:
    """Run the figures and print them; the last line is JSON."""
    rng = random.Random(7)
    t24, rules24, opt24 = solve_times(24, 20, rng)
    t168, _, _ = solve_times(168, 5, rng)
    print(
        f"optimal mix, 24 h horizon: p50 {statistics.median(t24):.1f} ms, max {max(t24):.1f} ms over {len(t24)} pools"
    )
    print(f"optimal mix, 168 h: p50 {statistics.median(t168):.1f} ms, max {max(t168):.1f} ms over {len(t168)} pools")
    saving = 100 * (rules24 - opt24) / rules24
    print(f"optimal vs rules on diurnal demand: ${rules24:,.0f} -> ${opt24:,.0f} a month ({saving:.1f}% less)")
    fleet, windows, forecasts = synthetic_fleet(2000, 50, rng)
    gpus = sum(s.gpu_count for s in fleet)
    start = time.perf_counter()
    result = evaluate(fleet, windows, forecasts, Catalogue(), Params())
    evaluate_s = time.perf_counter() - start
    print(
        f"full evaluation: {len(fleet)} servers / {gpus} GPUs / 50 models -> "
        f"{len(result.recommendations)} recommendations in {evaluate_s:.2f} s (fleet ${result.cost.total:,.0f}/h)"
    )
    print(
        json.dumps(
            {
                "mix_solve_ms_p50_24h": round(statistics.median(t24), 2),
                "mix_solve_ms_p50_168h": round(statistics.median(t168), 2),
                "optimal_vs_rules_saving_pct": round(saving, 2),
                "evaluate_s_2000_servers": round(evaluate_s, 3),
                "fleet_gpus": gpus,
                "recommendations": len(result.recommendations),
            }
        )
    )


if __name__ == "__main__":
    main()
