"""`llmfleet cost tenants`: the chargeback, cost per tenant per model per day, from the cost service's schema.

The gateway meters every request per tenant x model (fleet.usage.v1); the cost service adds each
period to its day's row, priced at its own cost per 1,000 tokens (the latest report's). `billed`
is what the gateway's price counted against the tenant's budget; `cost` is what the fleet spent.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from llmfleet.commands.console import Output, OutputOption
from services.cost.use_cases import operations

T = TypeVar("T")
DatabaseUrl = Annotated[str | None, typer.Option(help="the cost role's URL; default: the local stack's")]
Run = Callable[[str | None, Callable[[Any], Awaitable[Any]]], Any]


def register(cost_app: typer.Typer, run: Run) -> None:
    """Add `tenants` to `llmfleet cost`; `run` runs a coroutine on the cost schema (the group's own helper)."""

    @cost_app.command("tenants")
    def tenants(
        days: Annotated[int, typer.Option(min=1, help="this many UTC days back, today included")] = 30,
        tenant: Annotated[str | None, typer.Option(help="only this tenant (by name)")] = None,
        output: OutputOption = Output.table,
        database_url: DatabaseUrl = None,
    ) -> None:
        """Chargeback: requests, tokens, billed (the gateway's price) and cost (the fleet's) per tenant, model, day."""
        since = datetime.now(UTC).date() - timedelta(days=days - 1)
        rows: list[dict[str, Any]] = run(database_url, lambda s: operations.tenant_chargeback(s, since, tenant))
        if output is Output.json:
            typer.echo(json.dumps([_public(r) for r in rows]))
            return
        show(rows)


def _public(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("tenant", "tenant_id", "model_id", "requests", "failed", "prompt_tokens", "completion_tokens")
    return {k: r[k] for k in keys} | {
        "day": r["day"].isoformat(),
        "tokens": r["prompt_tokens"] + r["completion_tokens"],
        "billed_usd": round(r["billed_usd"], 9),
        "cost_usd": round(r["cost_usd"], 9),
        "unpriced_tokens": r["unpriced_tokens"],
    }


def show(rows: list[dict[str, Any]]) -> None:
    """The chargeback as a table, with a total per tenant."""
    table = Table(title="chargeback per tenant x model x day")
    for column in ("day", "tenant", "model", "requests", "failed", "tokens", "billed $", "cost $"):
        table.add_column(column, justify="right" if column not in ("day", "tenant", "model") else "left")
    totals: dict[str, tuple[float, float]] = {}
    for r in rows:
        p = _public(r)
        cost = f"{p['cost_usd']:,.6f}" + (" *" if p["unpriced_tokens"] else "")
        table.add_row(
            p["day"], p["tenant"], p["model_id"], str(p["requests"]), str(p["failed"]), f"{p['tokens']:,}",
            f"{p['billed_usd']:,.6f}", cost,
        )  # fmt: skip
        billed, spent = totals.get(p["tenant"], (0.0, 0.0))
        totals[p["tenant"]] = (billed + p["billed_usd"], spent + p["cost_usd"])
    console = Console()
    console.print(table)
    for name, (billed, spent) in sorted(totals.items()):
        console.print(f"{name}: billed ${billed:,.6f}, cost ${spent:,.6f}")
    if not rows:
        console.print("no metered usage in this period (the gateway publishes it every meter_interval_s)")
    elif any(r["unpriced_tokens"] for r in rows):
        console.print("* some tokens had no cost per token in the cost service's latest report: counted at $0")
