"""The demo's report: every figure computed from one replay run, written to a folder, summarised on screen.

`build_summary` is pure (the run in, a JSON-able dict out); `write_report` writes the summary, the raw
requests and events, a markdown report and two plots; `print_summary` shows it with rich. A figure that
could not be measured is null, and `notes` says why.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

from llmfleet.report.cost import cost_section, recommendations_section
from llmfleet.report.fleet import alerts_section, allocations_section, scaling_section, utilization_section
from llmfleet.report.prediction import prediction_section
from llmfleet.report.render import print_summary
from llmfleet.report.stats import run_end_s, unique_events
from llmfleet.report.traffic import batching_section, latency_section, requests_section, throughput_section
from llmfleet.run_data import ReplayRun, RequestRecord

__all__ = ["build_summary", "print_summary", "write_report"]

REQUEST_COLUMNS = [f.name for f in dataclasses.fields(RequestRecord)]


def _config_section(run: ReplayRun) -> dict[str, Any]:
    config = dataclasses.asdict(run.config)
    config["started_at"] = run.started_at.isoformat()
    config["extra"].pop("prediction", None)  # the summary's own section shows it beside the measured figures
    # Round-trip through JSON so anything odd in `extra` becomes a string rather than breaking the file.
    return dict(json.loads(json.dumps(config, default=str)))


def build_summary(run: ReplayRun) -> dict[str, Any]:
    """Every figure of the report, measured from `run` alone (no I/O)."""
    notes = list(run.notes)
    events, dropped = unique_events(run.events)
    if dropped:
        notes.append(f"{dropped} events were delivered twice (same event id) and counted once.")
    end_s = run_end_s(run)
    summary: dict[str, Any] = {
        "config": _config_section(run),
        "requests": requests_section(run.records, notes),
        "latency": latency_section(run.records, notes),
        "throughput": throughput_section(run, notes),
        "batching": batching_section(events, notes),
        "scaling": scaling_section(events),
        "allocations": allocations_section(events, notes),
        "alerts": alerts_section(events),
        "utilization": utilization_section(events, notes),
        "cost": cost_section(run.records, events, end_s, notes),
        "recommendations": recommendations_section(events),
    }
    summary["prediction"] = prediction_section(run.config.extra, summary)  # the simulator's, for a demo run
    summary["events_observed"] = len(events)
    summary["notes"] = notes
    return summary


def _write_requests(run: ReplayRun, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*REQUEST_COLUMNS, "latency_ms"])
        for record in run.records:
            latency = record.latency_s
            row = [getattr(record, name) for name in REQUEST_COLUMNS]
            writer.writerow(
                ["" if v is None else v for v in row] + ["" if latency is None else round(latency * 1000, 3)]
            )


def _write_events(run: ReplayRun, path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for observed in sorted(run.events, key=lambda e: e.at_s):
            line = {
                "at_s": observed.at_s,
                "topic": observed.topic,
                "type": getattr(observed.event, "type", type(observed.event).__name__),
                "event": observed.event.model_dump(mode="json"),
            }
            handle.write(json.dumps(line) + "\n")


def write_report(run: ReplayRun, folder: Path) -> dict[str, Any]:
    """Write summary.json, requests.csv, events.jsonl, report.md and the two plots to `folder`; return the summary."""
    # Imported here: matplotlib takes a second to import and only the file writer needs it.
    from llmfleet.report.markdown import render_markdown
    from llmfleet.report.plots import plot_demand_vs_capacity, plot_latency

    folder.mkdir(parents=True, exist_ok=True)
    summary = build_summary(run)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    _write_requests(run, folder / "requests.csv")
    _write_events(run, folder / "events.jsonl")
    plot_demand_vs_capacity(run, summary, folder / "demand_vs_capacity.png")
    plot_latency(run, folder / "latency.png")
    (folder / "report.md").write_text(render_markdown(summary), encoding="utf-8")
    return summary
