"""Rich rendering of `llmfleet status`: a table per section, a one-line cost summary, the notes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def render_platform_status(console: Console, status: dict[str, Any]) -> None:
    """Print the status dict from `platform_status` as tables."""
    console.print(_servers(status["servers"]))
    console.print(_models(status["models"]))
    console.print(_table("Router queues", ("model", "waiting or in flight"), _queue_rows(status["queues"])))
    console.print(_table("Firing alerts", ("rule", "severity", "scope", "value", "fired at"), _alert_rows(status)))
    console.print(cost_line(status["cost"]), markup=False)
    for note in status["notes"]:  # notes quote error messages: "[Errno 111]" is text, not markup
        console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)


def _table(title: str, columns: tuple[str, ...], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))  # ids and scopes are data, not markup
    if not rows:
        table.add_row("[dim]none[/dim]", *([""] * (len(columns) - 1)))
    return table


def _placed(model_id: str, instances: int, plan: str | None) -> str:
    """`model x2 (int8 single on 1 GPU)`: the instances and the deployment plan they run."""
    return f"{model_id} x{instances}" + (f" ({plan})" if plan else "")


def _servers(servers: list[dict[str, Any]]) -> Table:
    columns = ("server", "region", "gpus", "pricing", "$/h", "state", "endpoint", "models")
    rows = [
        (
            s["server_id"],
            s["region"],
            f"{s['gpu_count']}x {s['gpu_type']}",
            s["pricing_class"],
            f"{s['cost_per_hour']:.2f}",
            s["state"],
            s["endpoint"] or "-",
            ", ".join(_placed(m, n, s.get("plans", {}).get(m)) for m, n in s["models"].items()) or "-",
        )
        for s in servers
    ]
    return _table("Servers", columns, rows)


def _models(models: list[dict[str, Any]]) -> Table:
    rows = []
    for m in models:
        rph = m["requests_per_hour"]
        instances = ", ".join(f"{region}: {n}" for region, n in m["instances"].items()) or "-"
        rows.append((m["model_id"], m["tier"] or "-", "-" if rph is None else f"{rph:.0f}", instances, _action(m)))
    return _table("Models", ("model", "tier", "req/h", "instances", "last scaling action"), rows)


def _action(model: dict[str, Any]) -> str:
    a = model["last_action"]
    if a is None:
        return "-"
    return f"{a['kind']} {a['region']} -> {a['target']} {a['status']} ({a['rule']}, {a['requested_at']})"


def _queue_rows(queues: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [(q["model_id"], str(q["depth"])) for q in queues]


def _alert_rows(status: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (
            a["rule"],
            a["severity"],
            ", ".join(f"{k}={v}" for k, v in sorted(a["scope"].items())) if isinstance(a["scope"], dict) else "-",
            "-" if a["value"] is None else f"{a['value']:.3g}",
            a["fired_at"] or "-",
        )
        for a in status["alerts"]
    ]


def cost_line(cost: dict[str, Any]) -> str:
    """One line: cost per hour now (and by region), and what the open recommendations would save."""
    if cost["total_per_hour"] is None:
        head = "Cost: no report yet"
    else:
        regions = _top(cost["by_region_per_hour"])
        head = f"Cost: {cost['total_per_hour']:.2f} $/h" + (f" ({regions})" if regions else "")
        head += f" as of {cost['created_at']}"
    recs = cost["open_recommendations"]
    return f"{head}; {recs} open recommendation{'s' * (recs != 1)} saving {cost['open_savings_per_month']:.2f} $/month"


def _top(per_hour: dict[str, float], shown: int = 3) -> str:
    """The costliest few, so the summary stays one line on a big fleet."""
    ranked = sorted(per_hour.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{name} {value:.2f}" for name, value in ranked[:shown])
    return text + (f", +{len(ranked) - shown} more" if len(ranked) > shown else "")


def render_health(console: Console, target: dict[str, Any], health: dict[str, Any]) -> None:
    """The target, the broker, each checked service's probes, and the verdict with its reasons."""
    rows: list[tuple[str, ...]] = []
    kafka = health.get("kafka")
    if kafka is not None:
        what = f"{kafka.get('brokers', 0)} broker(s)" if kafka["reachable"] else kafka.get("error", "")
        rows.append(("kafka", kafka["bootstrap"], "yes" if kafka["reachable"] else "no", what))
    for name, check in health["services"].items():
        if check.get("running") is False:
            rows.append((name, "-", "no", "recorded but not running"))
            continue
        probes = f"health {'ok' if check.get('health') else 'no'}, ready {'ok' if check.get('ready') else 'no'}"
        rows.append((name, check["url"], "yes" if check.get("ready") else "no", check.get("detail") or probes))
    console.print(_table(f"Health ({target['source']})", ("component", "address", "ready", "what"), rows))
    code = health["exit_code"]
    word = {0: "[green]healthy[/green]", 1: "[yellow]unhealthy[/yellow]"}.get(code, "[red]unreachable[/red]")
    console.print(f"{word} (exit code {code})")
    for reason in health["reasons"]:
        console.print(f"  - {escape(reason)}", highlight=False)
