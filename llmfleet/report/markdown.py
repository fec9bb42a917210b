"""The report's human version (report.md): every section of the summary as markdown tables."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from llmfleet.report.prediction import prediction_markdown
from llmfleet.report.render import fmt

MAX_ROWS = 100  # longer lists stay complete in summary.json


def cell(value: Any) -> str:
    """A table cell: floats exactly as summary.json holds them (already rounded), '—' when unmeasured."""
    text = f"{value:,}" if isinstance(value, float) else fmt(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table of at most MAX_ROWS rows; pipes in cells escaped."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    all_rows = list(rows)
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in all_rows[:MAX_ROWS]]
    if len(all_rows) > MAX_ROWS:
        lines.append(f"\n({len(all_rows) - MAX_ROWS} more rows in summary.json)")
    return "\n".join(lines)


def _pairs(section: dict[str, Any], keys: Sequence[str]) -> str:
    return table(("figure", "value"), ((k, section.get(k)) for k in keys))


def _requests(s: dict[str, Any]) -> list[str]:
    r = s["requests"]
    out = ["## Requests", _pairs(r, ("sent", "ok", "rejected", "failed", "missing", "counts_add_up", "not_sent"))]
    out.append(table(("model", "sent", "ok", "rejected", "failed", "missing"), _by_model(r["by_model"], 5)))
    if r["top_reasons"]:
        out += ["Top reasons:", table(("status", "reason", "count"), (tuple(x.values()) for x in r["top_reasons"]))]
    return out


def _by_model(by_model: dict[str, dict[str, Any]], width: int) -> list[list[Any]]:
    return [[model, *list(figures.values())[:width]] for model, figures in by_model.items()]


def _latency(s: dict[str, Any]) -> list[str]:
    lat = s["latency"]
    keys = ("count", "p50_ms", "p95_ms", "p99_ms", "max_ms", "share_within_target")
    rows = [["all", *(lat[k] for k in keys)]] + [[m, *(v[k] for k in keys)] for m, v in lat["by_model"].items()]
    router = lat["router_total_ms"]
    return [
        f"## Latency (end to end, ok requests; target {lat['target_ms']:g} ms)",
        f"p95 meets the target: **{fmt(lat['p95_meets_target'])}**",
        table(("scope", *keys), rows),
        f"Router's own total (queued + batched + inference): p50 {fmt(router['p50_ms'], ' ms')}, "
        f"p95 {fmt(router['p95_ms'], ' ms')} over {router['count']} requests.",
    ]


def _throughput_batching(s: dict[str, Any]) -> list[str]:
    thr, batching = s["throughput"], s["batching"]
    out = ["## Throughput", _pairs(thr, tuple(thr))]
    out.append("## Batching (router's demand windows)")
    if batching is None:
        out.append("Not measured (no demand windows came; see notes).")
    else:
        keys = ("windows", "requests", "ok", "batches", "mean_batch_size")
        out.append(table(("model", *keys), ([m, *(b[k] for k in keys)] for m, b in batching.items())))
    return out


def _scaling_allocations(s: dict[str, Any]) -> list[str]:
    sc, al = s["scaling"], s["allocations"]
    keys = ("at_s", "model", "region", "kind", "current", "target", "rule", "policy", "priority", "reason")
    out = [
        "## Scaling actions",
        f"Actions: {sc['count']} ({', '.join(f'{k}: {n}' for k, n in sc['by_kind'].items()) or 'none'}); "
        f"overdue: {sc['overdue']}.",
        table(keys, ([a[k] for k in keys] for a in sc["actions"])),
        "## Allocations",
        _pairs(
            al,
            (
                "servers_started",
                "servers_released",
                "allocations_failed",
                "models_loaded",
                "models_unloaded",
                "peak_servers",
            ),
        ),
        table(("model", "peak instances"), al["peak_instances"].items()),
    ]
    tkeys = ("at_s", "type", "server", "model", "region", "gpu_type", "instances", "cost_per_hour", "reason")
    out.append(table(tkeys, ([row[k] for k in tkeys] for row in al["timeline"])))
    return out


def _alerts_utilization(s: dict[str, Any]) -> list[str]:
    al, util = s["alerts"], s["utilization"]
    keys = ("at_s", "rule", "severity", "state", "scope", "value", "threshold")
    still = ", ".join(a["rule"] for a in al["still_firing"]) or "none"
    out = [
        "## Alerts",
        f"Fired {al['fired']}, resolved {al['resolved']}; still firing at the end: {still}.",
        table(keys, ([_scope(c[k]) if k == "scope" else c[k] for k in keys] for c in al["changes"])),
        "## GPU utilisation (monitor)",
    ]
    if util is None:
        out.append("Not measured (no server metrics came; see notes).")
    else:
        out.append(
            f"Fleet mean {fmt(util['fleet_mean'], '', 3)}; derived from busy time (emulated): {util['derived']}."
        )
        ukeys = ("region", "gpu_type", "samples", "mean", "max", "derived")
        out.append(table(("server", *ukeys), ([srv, *(v[k] for k in ukeys)] for srv, v in util["servers"].items())))
    return out


def _scope(scope: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in scope.items())


def _cost(s: dict[str, Any]) -> list[str]:
    cost, recs = s["cost"], s["recommendations"]
    out = ["## Cost"]
    reported = cost["reported"]
    if reported is None:
        out.append("The cost service reported nothing during the run (see notes).")
    else:
        out.append(
            f"Cost service, last report at {reported['at_s']} s: ${reported['total_per_hour']}/h, "
            f"{reported['servers']} servers, {reported['gpus']} GPUs."
        )
        models = sorted(set(reported["by_model_per_hour"]) | set(reported["per_1k_tokens"]))
        rows = ([m, reported["by_model_per_hour"].get(m), reported["per_1k_tokens"].get(m)] for m in models)
        out.append(table(("model", "$/h", "$ per 1k tokens"), rows))
    measured = cost["measured"]
    out += [f"Measured ({measured['label']}):", _pairs(measured, [k for k in measured if k != "label"])]
    out.append(f"## Recommendations ({recs['count']}, ${recs['total_savings_per_month']:,.2f}/month in all)")
    keys = ("kind", "summary", "savings_per_month", "region", "gpu_type", "model")
    out.append(table(keys, ([r[k] for k in keys] for r in recs["items"])))
    return out


def render_markdown(summary: dict[str, Any]) -> str:
    """The whole report as markdown."""
    config = summary["config"]
    parts = [
        f"# llmfleet replay report — {config.get('trace')}",
        f"Started {config.get('started_at')} on {config.get('machine')}. Every figure below was measured in this run; "
        "'—' marks one that could not be (see Notes).",
        "## Configuration",
        table(("setting", "value"), ((k, _scope(v) if isinstance(v, dict) else v) for k, v in config.items())),
        *_requests(summary),
        *_latency(summary),
        *_throughput_batching(summary),
        *_scaling_allocations(summary),
        *_alerts_utilization(summary),
        *_cost(summary),
        *prediction_markdown(summary),
        "## Notes",
        "\n".join(f"- {n}" for n in summary["notes"]) or "None.",
        "## Files",
        "summary.json, requests.csv, events.jsonl, demand_vs_capacity.png, latency.png",
    ]
    return "\n\n".join(parts) + "\n"
