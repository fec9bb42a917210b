"""The report's screen summary (rich): a few compact tables of the figures `build_summary` measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from llmfleet.report.prediction import prediction_table

FIRST_ACTIONS = 5


def fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    """A figure for people: '—' when it could not be measured, rounded floats, a unit when given."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        value = f"{value:,.{digits}f}"
    return f"{value}{unit}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None)
    for column in columns:
        table.add_column(column)
    return table


def _traffic(summary: dict[str, Any]) -> Table:
    req, lat, thr = summary["requests"], summary["latency"], summary["throughput"]
    table = _table("Requests, latency, throughput", "figure", "value")
    adds = "[green]yes[/]" if req["counts_add_up"] else "[red]NO[/]"
    table.add_row(
        "requests",
        f"sent {req['sent']}  ok {req['ok']}  rejected {req['rejected']}  "
        f"failed {req['failed']}  missing {req['missing']}  (add up: {adds})",
    )
    meets = lat["p95_meets_target"]
    colour = "green" if meets else ("red" if meets is False else "yellow")
    table.add_row(
        "latency (ok, end to end)",
        f"p50 {fmt(lat['p50_ms'], ' ms', 0)}  [{colour}]p95 {fmt(lat['p95_ms'], ' ms', 0)}[/]  "
        f"p99 {fmt(lat['p99_ms'], ' ms', 0)}  max {fmt(lat['max_ms'], ' ms', 0)}  "
        f"target {lat['target_ms']:g} ms: [{colour}]{fmt(meets)}[/]  within {fmt(_pct(lat['share_within_target']))}",
    )
    router = lat["router_total_ms"]
    table.add_row("router total", f"p50 {fmt(router['p50_ms'], ' ms', 0)}  p95 {fmt(router['p95_ms'], ' ms', 0)}")
    table.add_row(
        "throughput",
        f"{fmt(thr['ok_requests_per_s'], ' ok req/s', 2)}  {fmt(thr['output_tokens_per_s'], ' out tok/s')}  "
        f"{fmt(thr['prompt_tokens_per_s'], ' prompt tok/s')}  "
        f"peak 10 s sent {fmt(thr['peak_10s_sent_per_s'], ' req/s')}",
    )
    for reason in req["top_reasons"]:
        table.add_row(f"  {reason['status']}", f"{reason['count']} x {escape(reason['reason'])}")
    return table


def _pct(share: float | None) -> str | None:
    return None if share is None else f"{share * 100:.1f}%"


def _fleet(summary: dict[str, Any]) -> Table:
    batching, scaling, alloc = summary["batching"], summary["scaling"], summary["allocations"]
    table = _table("Fleet", "figure", "value")
    if batching is None:
        table.add_row("batching", "—")
    for model, b in (batching or {}).items():
        table.add_row(
            escape(f"batching {model}"), f"{b['batches']} batches, mean size {fmt(b['mean_batch_size'], '', 2)}"
        )
    kinds = ", ".join(f"{k} {n}" for k, n in scaling["by_kind"].items()) or "none"
    table.add_row("scaling actions", f"{scaling['count']} ({kinds}), overdue {scaling['overdue']}")
    for a in scaling["actions"][:FIRST_ACTIONS]:
        table.add_row(
            f"  {a['at_s']:.0f} s",
            escape(f"{a['model']} {a['region']} {a['kind']} {a['current']}→{a['target']} ({a['rule']})"),
        )
    peaks = escape(", ".join(f"{m} {n}" for m, n in alloc["peak_instances"].items()) or "—")
    table.add_row(
        "allocations",
        f"servers started {alloc['servers_started']}, released {alloc['servers_released']}, "
        f"failed {alloc['allocations_failed']}, peak servers {alloc['peak_servers']}; peak instances {peaks}",
    )
    alerts = summary["alerts"]
    still = escape(", ".join(a["rule"] for a in alerts["still_firing"]) or "none")
    table.add_row("alerts", f"fired {alerts['fired']}, resolved {alerts['resolved']}, still firing: {still}")
    util = summary["utilization"]
    if util is None:
        table.add_row("utilisation", "—")
    else:
        table.add_row(
            "utilisation",
            f"fleet mean {fmt(_pct(util['fleet_mean']))} over {len(util['servers'])} servers "
            f"(derived from busy time: {util['derived']})",
        )
    return table


def _cost(summary: dict[str, Any]) -> Table:
    cost, recs = summary["cost"], summary["recommendations"]
    table = _table("Cost", "figure", "value")
    reported = cost["reported"]
    if reported is None:
        table.add_row("cost service", "—")
    else:
        per_1k = escape(", ".join(f"{m} ${v:.4f}" for m, v in reported["per_1k_tokens"].items()) or "—")
        table.add_row("cost service (last)", f"${reported['total_per_hour']:.2f}/h, per 1k tokens: {per_1k}")
    measured = cost["measured"]
    table.add_row(
        "measured",
        f"${fmt(measured['dollars'], '', 4)} over {fmt(measured['wall_s'], ' s', 0)}, "
        f"${fmt(measured['per_1k_tokens'], '', 5)} per 1k tokens ({measured['label']})",
    )
    table.add_row("recommendations", f"{recs['count']}, saving ${recs['total_savings_per_month']:,.0f}/month")
    for r in recs["items"][:3]:
        table.add_row(f"  {r['kind']}", escape(f"{r['summary']} (${r['savings_per_month']:,.0f}/month)"))
    return table


def print_summary(console: Console, summary: dict[str, Any], folder: Path | str | None = None) -> None:
    """Show the report's key figures as a rich panel; `folder` (optional) is where the full report went."""
    parts: list[Any] = [_traffic(summary), "", _fleet(summary), "", _cost(summary)]
    prediction = prediction_table(summary)
    if prediction is not None:
        parts += ["", prediction]
    if summary["notes"]:
        parts += ["", "[bold]Notes[/]", *(f"• {escape(note)}" for note in summary["notes"])]
    if folder is not None:
        parts += ["", f"Full report: [cyan]{escape(str(folder))}[/]"]
    config = summary["config"]
    title = f"llmfleet replay — {config.get('trace', '?')}, compression {config.get('compression', '?')}x"
    console.print(Panel(Group(*parts), title=title, subtitle=str(config.get("machine", ""))))
