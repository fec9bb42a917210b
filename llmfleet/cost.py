"""`llmfleet cost recommendations` and `llmfleet cost apply <id>`: the cost service's advice, carried out on request.

Both work on the cost service's schema with its role, as `llmfleet keys` does on the gateway's.
Applying goes through the cost service's own use case (`operations.apply_recommendation`): the
recommendation is marked applied and its `CapacityChangeRequested` (or scaling actions) queued in
the cost service's outbox in one transaction; the running cost service's relay publishes it, the
allocator carries it out once (audited by request id) and announces `CapacityChanged`, and the next
cost report shows it. Applying an applied recommendation again sends nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from sqlalchemy import select

from llmfleet import chargeback, target
from llmfleet.commands.console import Output, OutputOption, console
from llmfleet.status.health import UNREACHABLE, is_unreachable
from services.cost.adapters.orm import recommendation
from services.cost.adapters.repository import Database
from services.cost.domain.applying import RecommendationRow, requests_for
from services.cost.use_cases import operations
from shared.db import create_engine, session_factory

T = TypeVar("T")
cost_app = typer.Typer(no_args_is_help=True, help="The cost service's recommendations, applied on request.")
DatabaseUrl = Annotated[str | None, typer.Option(help="the cost role's URL; default: the local stack's")]
SOURCE = "llmfleet-cli"
SHOWN = ("open", "applied")

# Exit codes of `cost apply`: 0 applied or already applied.
UNKNOWN, NOT_OPEN, DECLINED = 2, 3, 1


def register(app: typer.Typer) -> None:
    """Add `cost` to the main CLI."""
    app.add_typer(cost_app, name="cost")
    chargeback.register(cost_app, _run)  # cost tenants


def _url(given: str | None) -> str:
    """This command's --database-url, LLMFLEET_COST_DATABASE_URL, the global target's, or the local stack's."""
    if given or (given := os.environ.get("LLMFLEET_COST_DATABASE_URL")):
        return given
    if url := target.current().database_url("cost"):
        return url
    raise typer.BadParameter(
        "no database for the cost role: `make up` for the local stack, or pass --database-url (global or here)"
    )


def _run(url: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run one coroutine against the cost service's schema, then close the pool."""

    async def go() -> T:
        engine = create_engine(_url(url), "cost", pool_size=1)
        try:
            return await work(session_factory(engine))
        except Exception as error:
            _exit_if_unreachable(error)
            raise
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _exit_if_unreachable(error: Exception) -> None:
    """A database that does not answer is exit code 3 and one line, as in `llmfleet status`; not a traceback."""
    if is_unreachable(error):
        console.print(f"[red]the cost role's database does not answer ({type(error).__name__}: {error})[/red]")
        raise typer.Exit(UNREACHABLE) from None


async def recommendations(sessions: Any, statuses: tuple[str, ...] = SHOWN) -> list[dict[str, Any]]:
    """Recommendations in the given states, open first, then largest savings first."""
    c = recommendation.c
    query = select(recommendation).where(c.status.in_(statuses)).order_by(c.status.desc(), c.savings_per_month.desc())
    async with sessions() as session:
        return [dict(row._mapping) for row in (await session.execute(query)).all()]


def _row(r: dict[str, Any]) -> RecommendationRow:
    return RecommendationRow(
        r["recommendation_id"], r["kind"], r["region"], r["gpu_type"], r["model_id"], r["action"], r["evidence"],
        r["status"], r["applied_request"],
    )  # fmt: skip


def _where(r: dict[str, Any]) -> str:
    return " / ".join(str(v) for v in (r["region"], r["gpu_type"], r["model_id"]) if v) or "-"


def _evidence(r: dict[str, Any]) -> str:
    e = r["evidence"] or {}
    parts = []
    if "utilization" in e:
        parts.append(f"util {e['utilization']:.2f}")
    if "gpus" in e and isinstance(e["gpus"], dict) and "on_demand" in e["gpus"]:
        parts.append("GPUs " + ", ".join(f"{k} {v}" for k, v in e["gpus"].items()))
    if "commitment_months" in e:
        parts.append(f"{e['commitment_months']}-month commitment ${e.get('commitment_cost', 0):,.2f}")
    if "savings_vs_rules_per_month" in e:
        parts.append(f"vs rules ${e['savings_vs_rules_per_month']:,.2f}/month")
    return "; ".join(parts) or json.dumps(e, default=str)[:120]


@cost_app.command("recommendations")
def list_recommendations(
    output: OutputOption = Output.table,
    database_url: DatabaseUrl = None,
) -> None:
    """Open (and applied) recommendations: kind, pool or model, summary, evidence, savings per month."""
    rows = _run(database_url, recommendations)
    if output is Output.json:
        keys = ("recommendation_id", "kind", "status", "region", "gpu_type", "model_id", "summary")
        body = [
            {k: r[k] for k in keys} | {"savings_per_month": r["savings_per_month"], "evidence": r["evidence"]}
            for r in rows
        ]
        console.print_json(json.dumps(body, default=str))
        return
    table = Table(title="cost recommendations")
    table.add_column("id", overflow="fold", min_width=24)  # whole, to copy into `llmfleet cost apply`
    for column in ("kind", "status", "where", "summary", "evidence"):
        table.add_column(column)
    table.add_column("$/month", justify="right")
    for r in rows:
        table.add_row(
            r["recommendation_id"], r["kind"], r["status"], _where(r), r["summary"], _evidence(r),
            f"{r['savings_per_month']:,.2f}",
        )  # fmt: skip
    console.print(table)
    if not rows:
        console.print("no open recommendations (the cost service makes them each cycle)")


@dataclass
class Applied:
    """What `apply` did: `outcome` is applied, already_applied, unknown, not_open or declined."""

    outcome: str
    message: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def describe(r: dict[str, Any]) -> list[str]:
    """What applying the recommendation will ask for, in words."""
    lines = [f"{r['kind']} {_where(r)}: {r['summary']}", f"saves ${r['savings_per_month']:,.2f} a month"]
    for event in requests_for(_row(r), "preview", SOURCE, datetime.now(UTC)):
        body = event.model_dump(mode="json")
        if body["type"] == "capacity_change_requested":
            change = ", ".join(f"{'+' if n > 0 else ''}{n} {c}" for c, n in body["changes"].items())
            months = f" ({body['commitment_months']}-month commitment)" if body.get("commitment_months") else ""
            lines.append(f"the allocator changes {body['region']}/{body['gpu_type']}: {change} GPUs{months}")
        else:
            lines.append(f"scale {body['model_id']} in {body['region']} to {body['target_instances']} instances")
    return lines


async def apply(
    sessions: Database, recommendation_id: str, confirm: Callable[[list[str]], bool], now: datetime | None = None
) -> Applied:
    """Apply a recommendation once, after `confirm` agrees with what it will do."""
    found = [r for r in await recommendations(sessions, ("open", "applied", "superseded", "withdrawn"))]
    row = next((r for r in found if r["recommendation_id"] == recommendation_id), None)
    if row is None:
        return Applied("unknown", f"no recommendation {recommendation_id}")
    if row["status"] == "applied":
        when = f" on {row['updated_at']:%Y-%m-%d %H:%M}" if row.get("updated_at") else ""
        return Applied(
            "already_applied",
            f"{recommendation_id} was applied{when}: nothing sent again",
            row["applied_request"] or [],
        )
    if row["status"] != "open":
        return Applied("not_open", f"{recommendation_id} is {row['status']}, not open: nothing to apply")
    if not confirm(describe(row)):
        return Applied("declined", "not applied")
    request_id = f"apply-{uuid.uuid4().hex[:12]}"
    try:
        events = await operations.apply_recommendation(
            sessions, recommendation_id, request_id, SOURCE, now or datetime.now(UTC)
        )
    except LookupError as error:
        return Applied("unknown", str(error))
    except ValueError as error:  # withdrawn or superseded by a cycle meanwhile
        return Applied("not_open", str(error))
    bodies = [e.model_dump(mode="json") for e in events]
    if bodies and bodies[0].get("request_id") not in (None, request_id):
        return Applied("already_applied", f"{recommendation_id} was applied meanwhile: nothing sent again", bodies)
    return Applied("applied", f"applied {recommendation_id} (request {request_id})", bodies)


@cost_app.command("apply")
def apply_recommendation(
    recommendation_id: Annotated[str, typer.Argument(help="an id from `llmfleet cost recommendations`")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Apply a recommendation: shows what it will do, asks, then queues the request (once)."""

    def confirm(lines: list[str]) -> bool:
        for line in lines:
            console.print(line)
        return yes or typer.confirm("apply it?", default=False)

    done = _run(database_url, lambda sessions: apply(sessions, recommendation_id, confirm))
    if done.outcome in ("applied", "already_applied"):
        console.print(done.message)
        if done.outcome == "applied":
            console.print(
                "queued in the cost service's outbox: the allocator carries it out once it is relayed;"
                " the next cost report shows it"
            )
        return
    console.print(f"[red]{done.message}[/red]")
    raise typer.Exit({"unknown": UNKNOWN, "not_open": NOT_OPEN}.get(done.outcome, DECLINED))
