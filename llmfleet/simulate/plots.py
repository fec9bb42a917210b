"""The simulation's plots (PNG): GPUs and demand over the day, and p95 latency over the day.

Drawn with matplotlib's object API (`Figure`), as the demo's report does: no pyplot state, no GUI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

SIZE_IN = (10.0, 5.0)
DPI = 100
STYLES = {"policy": ("tab:blue", "-"), "oracle": ("tab:green", "--"), "static_peak": ("tab:gray", ":")}


def plot_capacity(summary: dict[str, Any], path: Path) -> None:
    """GPUs held by the policy and the baselines (left axis), requests per second (right axis)."""
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    ax = fig.add_subplot()
    runs = {"policy": summary["series"], **summary.get("baseline_series", {})}
    for name, series in runs.items():
        if name not in STYLES or not series.get("time_h"):
            continue
        color, style = STYLES[name]
        ax.plot(series["time_h"], series["allocated_gpus"], color=color, linestyle=style, label=f"GPUs: {name}")
    ax.set_xlabel("hour of the simulated day (UTC)")
    ax.set_ylabel("GPUs held")
    demand = fig.axes[0].twinx()
    series = summary["series"]
    demand.plot(
        series["time_h"], series["demand_rps"], color="tab:orange", alpha=0.6, linewidth=0.8, label="requests/s"
    )
    demand.set_ylabel("requests per second")
    lines = ax.get_legend_handles_labels()
    more = demand.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize="small")
    ax.set_title("GPUs held against demand: the services' policies and the baselines")
    fig.savefig(path)


def plot_latency(summary: dict[str, Any], path: Path) -> None:
    """p95 latency of each control interval (all models), with the SLO."""
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    ax = fig.add_subplot()
    series = summary["series"]
    p95 = [v * 1000 for v in series["p95_s"]]  # NaN (nothing served) leaves a gap
    ax.plot(series["time_h"], p95, color="tab:blue", linewidth=0.8, label="p95 per minute (policy)")
    ax.axhline(summary["config"]["slo_ms"], color="tab:red", linestyle="--", label="SLO")
    ax.set_yscale("log")
    ax.set_xlabel("hour of the simulated day (UTC)")
    ax.set_ylabel(f"latency ({summary['config']['latency']}), ms")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title("p95 latency over the day")
    fig.savefig(path)
