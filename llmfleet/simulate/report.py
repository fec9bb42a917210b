"""The simulation's report, in the demo's shape: summary.json, report.md and plots in one folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from llmfleet.simulate import Simulation
from llmfleet.simulate.plots import plot_capacity, plot_latency

TARGETS = {
    "slo_attainment": (">=", 0.99),
    "gpu_hours_vs_oracle": ("<=", 1.15),
    "gpu_hours_vs_static": ("<=", 0.70),
    "utilization_busy_hours": (">=", 0.80),
}
PERCENT = {"slo_attainment", "within_model_target", "utilization", "utilization_busy_hours"}
COLUMNS = (
    ("run", "name"),
    ("GPU-hours", "gpu_hours"),
    ("cost $", "cost_usd"),
    ("SLO", "slo_attainment"),
    ("model target", "within_model_target"),
    ("p95 ms", "p95_ms"),
    ("worst model-hour p95 ms", "p95_ms_worst_model_hour"),
    ("util", "utilization"),
    ("util busy h", "utilization_busy_hours"),
    ("cold starts", "cold_starts"),
    ("actions", "scaling_actions"),
)


def _cell(run: dict[str, Any], key: str) -> str:
    value = run["counts"].get(key, 0) if key == "cold_starts" else run.get(key)
    if value is None:
        return "-"
    if key in PERCENT:
        return f"{value:.2%}"
    return f"{value:,.0f}" if isinstance(value, float | int) else str(value)


def rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The policy run, then the baselines."""
    return [summary["policy"], *summary["baselines"].values()]


def table_md(runs: list[dict[str, Any]]) -> str:
    """A markdown table of runs."""
    lines = ["| " + " | ".join(title for title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(run, key) for _, key in COLUMNS) + " |" for run in runs]
    return "\n".join(lines)


def verdict(key: str, value: float | None) -> str:
    """Met / missed against the issue's target."""
    if key not in TARGETS or value is None:
        return ""
    op, target = TARGETS[key]
    ok = value >= target if op == ">=" else value <= target
    return f"{'met' if ok else 'missed'} (target {op} {target})"


def render_markdown(summary: dict[str, Any]) -> str:
    """report.md."""
    cfg, work, head = summary["config"], summary["workload"], summary["headline"]
    parts = [
        "# Fleet simulation",
        "",
        f"{work['requests']:,} requests over {work['hours']:g} h, {work['models']} models, 3 regions, "
        f"{work['fleet_gpus']:,} GPUs ({work['allocatable_gpus']:,} allocatable). Policy **{cfg['policy']}**, "
        f"tiers {'on' if cfg['tiers'] else 'off'}, preload {'on' if cfg['preload'] else 'off'}, batching "
        f"{cfg['batching']}, routing {cfg['routing']}, pricing {cfg['pricing']}; latency is {cfg['latency']}, "
        f"SLO {cfg['slo_ms']:g} ms. Model and mapping: docs/simulator.md.",
        "",
        "## Headline",
        "",
        "| figure | value | |",
        "|---|---|---|",
        *(f"| {k} | {v} | {verdict(k, v)} |" for k, v in head.items()),
        "",
        "## Against the baselines",
        "",
        table_md(rows(summary)),
        "",
    ]
    if summary["comparison"]:
        parts += ["## Policies side by side", "", table_md(summary["comparison"]), ""]
    counts = summary["policy"]["counts"]
    parts += [
        "## What the control plane did",
        "",
        *(f"- {k}: {v:,.0f}" for k, v in counts.items()),
        f"- alerts fired: {summary['policy']['alerts_fired'] or 'none'}",
        "",
        "## Models",
        "",
        "| model | size | kind | target ms | requests | SLO | within target | worst hour p95 ms |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {m['model']} | {m['size']} | {m['kind']} | {m['target_ms']:g} | {m['requests']:,} | "
            f"{m['slo_attainment']} | {m['within_target']} | {m['p95_ms_worst_hour']} |"
            for m in summary["models"]
        ),
        "",
        "![GPUs and demand](capacity.png)",
        "",
        "![p95 latency](latency.png)",
        "",
    ]
    return "\n".join(parts)


def write_report(result: Simulation, folder: Path) -> dict[str, Any]:
    """summary.json, report.md, capacity.png and latency.png in `folder`; the summary."""
    folder.mkdir(parents=True, exist_ok=True)
    summary = result.summary
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(render_markdown(summary), encoding="utf-8")
    plot_capacity(summary, folder / "capacity.png")
    plot_latency(summary, folder / "latency.png")
    return summary


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """The headline and the comparison tables on the terminal."""
    head = Table(title="simulation: headline")
    for column in ("figure", "value", "target"):
        head.add_column(column)
    for key, value in summary["headline"].items():
        head.add_row(key, str(value), verdict(key, value))
    console.print(head)
    for title, runs in (("against the baselines", rows(summary)), ("policies side by side", summary["comparison"])):
        if not runs:
            continue
        table = Table(title=title)
        for name, _ in COLUMNS:
            table.add_column(name)
        for run in runs:
            table.add_row(*(_cell(run, key) for _, key in COLUMNS))
        console.print(table)
