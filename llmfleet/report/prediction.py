"""The simulator's prediction for a demo run beside what the run measured (summary, markdown, screen)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

FIGURES = ("p95_ms", "requests_ok", "servers_started", "scaling_actions", "utilization")


def measured_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The run's own figures, as the prediction names them (p95 end to end, as the demo measures it)."""
    return {
        "p95_ms": summary["latency"]["p95_ms"],
        "requests_ok": summary["requests"]["ok"],
        "servers_started": summary["allocations"]["servers_started"],
        "scaling_actions": summary["scaling"]["count"],
        "utilization": summary["utilization"]["fleet_mean"],
    }


def prediction_section(extra: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any] | None:
    """Predicted and measured side by side, and p95's ratio; None when the run had no prediction."""
    predicted = extra.get("prediction")
    if not isinstance(predicted, dict):
        return None
    measured = measured_figures(summary)
    p95, guess = measured["p95_ms"], predicted.get("p95_ms")
    ratio = round(guess / p95, 3) if p95 and guess is not None else None
    return {
        "rows": [{"figure": f, "predicted": predicted.get(f), "measured": measured[f]} for f in FIGURES],
        "p95_predicted_over_measured": ratio,
        "assumptions": predicted.get("assumptions", {}),
    }


def prediction_markdown(summary: dict[str, Any]) -> list[str]:
    """A section of report.md (none when the run had no prediction)."""
    from llmfleet.report.markdown import table  # markdown.py imports this module

    section = summary.get("prediction")
    if not section:
        return []
    rows = ((r["figure"], r["predicted"], r["measured"]) for r in section["rows"])
    assumed = ", ".join(f"{k} {v}" for k, v in section["assumptions"].items())
    return [
        "## The simulator's prediction for this run",
        "The simulator (`llmfleet.simulate.demo_scenario`, docs/simulator.md) ran this run's planned requests, "
        f"fleet file and settings before it started; its inputs (tinylm's compute measured at the start): {assumed}.",
        table(("figure", "predicted", "measured"), rows),
        f"p95 predicted / measured: {section['p95_predicted_over_measured']}",
    ]


def prediction_table(summary: dict[str, Any]) -> Table | None:
    """The screen's table (none when the run had no prediction)."""
    section = summary.get("prediction")
    if not section:
        return None
    table = Table(title="The simulator's prediction", title_justify="left", title_style="bold", box=None)
    for column in ("figure", "predicted", "measured"):
        table.add_column(column)
    for row in section["rows"]:
        table.add_row(row["figure"], str(row["predicted"]), str(row["measured"]))
    table.add_row("p95 predicted / measured", str(section["p95_predicted_over_measured"]), "")
    return table
