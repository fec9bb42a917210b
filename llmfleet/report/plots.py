"""The report's two plots (PNG): demand vs capacity over time, and latency over time.

Drawn with matplotlib's object API (`Figure`), which renders PNGs through Agg and never touches
pyplot's global state or a GUI backend, so it is safe in a headless process.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from llmfleet.report.stats import bin_counts, percentile, plot_bin_s, run_end_s
from llmfleet.report.traffic import TARGET_MS
from llmfleet.run_data import ReplayRun

SIZE_IN = (10.0, 5.0)  # at 100 dpi: 1000 x 500 px
DPI = 100
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="gray")


def _capacity_xy(steps: list[list[float]], end_s: float, per_instance: float) -> tuple[list[float], list[float]]:
    """A step line from 0 (no capacity seen yet) through each change to the end of the run."""
    xs, ys = [0.0], [0.0]
    for at_s, instances in steps:
        xs.append(at_s)
        ys.append(instances * per_instance)
    xs.append(max(end_s, xs[-1]))
    ys.append(ys[-1])
    return xs, ys


def plot_demand_vs_capacity(run: ReplayRun, summary: dict[str, Any], path: Path) -> None:
    """Requests sent per second per model (lines), capacity per model (steps), scaling actions (ticks)."""
    end_s = run_end_s(run)
    width = plot_bin_s(end_s)
    rph = run.config.requests_per_instance_hour
    by_model: dict[str, float] = run.config.extra.get("capacity_rph") or {}  # the scaler's, per model
    steps: dict[str, list[list[float]]] = summary["allocations"]["capacity_steps"]
    models = sorted({r.model_id for r in run.records} | set(steps))
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    ax = fig.add_subplot()
    # Capacity shares the demand axis in requests/s when the scaler's per-instance rate is known.
    known = rph > 0 or all(by_model.get(m, 0) > 0 for m in models)
    cap_ax = ax if known else ax.twinx()
    for i, model in enumerate(models):
        per_instance = by_model.get(model, rph) / 3600.0 if known else 1.0
        color = COLORS[i % len(COLORS)]
        counts = bin_counts((r.sent_s for r in run.records if r.model_id == model and r.sent_s is not None), width)
        if counts:
            last = max(counts)
            xs = [(b + 0.5) * width for b in range(0, last + 1)]
            ax.plot(xs, [counts.get(b, 0) / width for b in range(0, last + 1)], color=color, label=f"{model} sent")
        if model in steps:
            cx, cy = _capacity_xy(steps[model], end_s, per_instance)
            cap_ax.plot(cx, cy, drawstyle="steps-post", color=color, linestyle="--", label=f"{model} capacity")
    colour_of = {model: COLORS[i % len(COLORS)] for i, model in enumerate(models)}
    for n, action in enumerate(summary["scaling"]["actions"]):
        label = "scaling action (model's colour)" if n == 0 else None
        colour = colour_of.get(action["model"], "gray")
        ax.axvline(action["at_s"], color=colour, alpha=0.5, linestyle=":", linewidth=1, label=label)
    if not models:
        _empty_note(ax, "no requests and no capacity observed")
    ax.set_title(f"Demand vs capacity ({width:g} s bins)")
    ax.set_xlabel("replay time (s)")
    ax.set_ylabel("requests / s")
    if cap_ax is not ax:
        cap_ax.set_ylabel("instances")
    else:
        each = ", ".join(f"{m} {by_model.get(m, rph):,.0f}" for m in models) if by_model else f"{rph:g}"
        ax.text(0.01, 0.98, f"capacity = instances x req/h ({each})", transform=ax.transAxes, va="top", fontsize=8)
    ax.set_xlim(0, max(end_s, 1.0))
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    if cap_ax is not ax:
        more = cap_ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    if handles:
        ax.legend(handles, labels, loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def plot_latency(run: ReplayRun, path: Path) -> None:
    """p50 and p95 end-to-end latency of ok requests per send-time bin, the 2 s target, and non-ok counts."""
    end_s = run_end_s(run)
    width = plot_bin_s(end_s)
    latencies: dict[int, list[float]] = defaultdict(list)
    not_ok: dict[str, dict[int, int]] = {"rejected": {}, "failed": {}, "missing": {}}
    for r in run.records:
        if r.sent_s is None:
            continue
        index = int(r.sent_s // width)
        if r.status == "ok" and r.latency_s is not None:
            latencies[index].append(r.latency_s * 1000.0)
        elif r.status in ("rejected", "failed", None):
            bucket = not_ok[r.status or "missing"]
            bucket[index] = bucket.get(index, 0) + 1
    fig = Figure(figsize=SIZE_IN, dpi=DPI)
    ax = fig.add_subplot()
    bins = sorted(latencies)
    xs = [(b + 0.5) * width for b in bins]
    for q in (50, 95):
        ys = [percentile(latencies[b], q) or 0.0 for b in bins]  # every bin listed holds at least one value
        ax.plot(xs, ys, marker=".", label=f"p{q} (ok)")
    ax.axhline(TARGET_MS, color="red", linestyle="--", linewidth=1, label=f"target {TARGET_MS:g} ms")
    if not bins:
        _empty_note(ax, "no ok requests")
    bar_handles: list[Any] = []
    if any(not_ok.values()):
        bars = ax.twinx()
        bottom: dict[int, int] = defaultdict(int)
        for status, color in (("rejected", "tab:orange"), ("failed", "tab:red"), ("missing", "tab:gray")):
            counts = not_ok[status]
            if counts:
                keys = sorted(counts)
                bar_handles.append(
                    bars.bar(
                        [(k + 0.5) * width for k in keys],
                        [counts[k] for k in keys],
                        width=width * 0.8,
                        bottom=[bottom[k] for k in keys],
                        color=color,
                        alpha=0.35,
                        label=status,
                    )
                )
                for k in keys:
                    bottom[k] += counts[k]
        bars.set_ylabel("requests not ok per bin")
        bars.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"End-to-end latency over time ({width:g} s bins by send time)")
    ax.set_xlabel("replay time (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_xlim(0, max(end_s, 1.0))
    ax.set_ylim(bottom=0)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles + bar_handles, labels + [h.get_label() for h in bar_handles], loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
