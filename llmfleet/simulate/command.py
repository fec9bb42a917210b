"""The `llmfleet simulate` command (registered in llmfleet/cli.py); the simulator loads when it runs."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from llmfleet.simulate.options import LatencyMeasure, Pricing, SimOptions
from services.router.domain.batching import BatchStrategy
from services.scaler.domain.policy import PolicyName
from shared.events import RoutingStrategy

DEFAULTS = SimOptions()


def simulate(
    compare: Annotated[
        bool, typer.Option("--compare", help="also run every policy, and tiers / preload off: one table")
    ] = False,
    trace: Annotated[
        str | None,
        typer.Option(help="replay a trace as it is: a CSV file (model id = its stem), a folder of them, or a name"),
    ] = None,
    hours: Annotated[float, typer.Option(help="simulated hours (a trace runs for its own span)")] = 24.0,
    scaling: Annotated[PolicyName, typer.Option(help="the scaler's policy")] = DEFAULTS.policy,
    tiers: Annotated[bool, typer.Option(help="tier floors (hot / warm) on or off")] = True,
    preload: Annotated[bool, typer.Option(help="predictive preload on or off")] = True,
    batching: Annotated[BatchStrategy, typer.Option(help="the router's batching strategy")] = DEFAULTS.batching,
    routing: Annotated[RoutingStrategy, typer.Option(help="the requests' routing strategy")] = DEFAULTS.routing,
    latency: Annotated[LatencyMeasure, typer.Option(help="what the SLO measures")] = DEFAULTS.latency,
    pricing: Annotated[Pricing, typer.Option(help="reserved / spot / on-demand mix, or all on demand")] = (
        DEFAULTS.pricing
    ),
    spot_reclaims_per_hour: Annotated[float, typer.Option(help="spot reclaims per server-hour")] = (
        DEFAULTS.spot_reclaims_per_hour
    ),
    requests_per_day: Annotated[float, typer.Option(help="the seed's traffic")] = DEFAULTS.workload.requests_per_day,
    models: Annotated[int, typer.Option(help="models (Zipf popularity)")] = DEFAULTS.workload.models,
    seed: Annotated[int, typer.Option(help="random seed (the run repeats exactly)")] = DEFAULTS.seed,
    folder: Annotated[Path | None, typer.Option(help="report folder (default reports/simulate-<time>)")] = None,
) -> None:
    """Simulate the seed's fleet (100M requests/day, 50 models, 10,000 GPUs) with the services' own policies."""
    from llmfleet import trace as traces
    from llmfleet.simulate import run
    from llmfleet.simulate.report import print_summary, write_report

    console = Console(width=None if Console().is_terminal else 160)
    try:
        files = tuple(traces.resolve(trace).values()) if trace else ()
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--trace") from error
    workload = replace(DEFAULTS.workload, requests_per_day=requests_per_day, models=models, trace=files)
    options = replace(
        DEFAULTS, workload=workload, duration_s=hours * 3600, policy=scaling, tiers=tiers, preload=preload,
        batching=batching, routing=routing, latency=latency, pricing=pricing,
        spot_reclaims_per_hour=spot_reclaims_per_hour, seed=seed,
    )  # fmt: skip
    out = folder or Path("reports") / f"simulate-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    started = time.perf_counter()
    console.print(f"simulating {'the trace' if files else f'{hours:g} h of the seed'} (policy {scaling.value})...")
    result = run(options, baselines=True, compare=compare)
    summary = write_report(result, out)
    print_summary(console, summary)
    console.print(f"{time.perf_counter() - started:.0f} s; report: [bold]{out}[/bold] (report.md, summary.json, plots)")
