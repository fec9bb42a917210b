"""`llmfleet`: bring the local stack up and down, see its status, run the demo."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from deploy.local import stack

app = typer.Typer(no_args_is_help=True, help="llmfleet: control plane for LLM serving fleets (local stack).")
# Wide enough for the demo table when output goes to a file or CI log (rich assumes 80 there).
console = Console(width=None if Console().is_terminal else 140)


@app.command()
def install() -> None:
    """Fetch the Kafka jars and the Triton binary into the cache (done once; `up` does it too)."""
    stack.install()
    console.print("[green]installed[/green]")


@app.command()
def up() -> None:
    """Start PostgreSQL, Kafka (with topics) and the Triton servers; idempotent."""
    stack.install()
    info = stack.up()
    _print_status(stack.status())
    console.print(f"Kafka at [bold]{info['kafka']['bootstrap']}[/bold]; `llmfleet down` stops everything")


@app.command()
def down() -> None:
    """Stop everything the stack started (data and logs stay)."""
    stack.down()
    console.print("[green]stopped[/green]")


@app.command()
def status(output: str = typer.Option("table", "-o", "--output", help="table or json")) -> None:
    """Show what runs where."""
    current = stack.status()
    if output == "json":
        console.print_json(json.dumps(current, default=str))
    else:
        _print_status(current)


def _print_status(current: dict[str, Any]) -> None:
    table = Table(title="llmfleet local stack")
    for column in ("component", "running", "address", "what"):
        table.add_column(column, no_wrap=True)
    pg, kf = current["postgres"], current["kafka"]
    pg_version = pg.get("version", "").removeprefix("postgres (PostgreSQL) ").split(" ")[0]
    table.add_row("postgres", _yes(pg.get("running")), f"127.0.0.1:{pg.get('port', '-')}", f"PostgreSQL {pg_version}")
    table.add_row("kafka", _yes(kf.get("running")), kf.get("bootstrap", "-"), f"Kafka {kf.get('version', '')} (KRaft)")
    for name, server in sorted(current["triton"].items()):
        gpu = f"emulated {server.get('gpu_type')} (speed x{server.get('relative_speed')})"
        table.add_row(
            name, _yes(server.get("running")), server.get("http_url", "-"), f"Triton, {gpu}, {server.get('region')}"
        )
    console.print(table)
    console.print(f"logs: {current['logs']}")


def _yes(flag: object) -> str:
    return "[green]yes[/green]" if flag else "[red]no[/red]"


@app.command()
def demo(keep: bool = typer.Option(False, "--keep", help="leave the stack running afterwards")) -> None:
    """Bring the stack up, send prompts through Kafka to Triton, print what came back, stop."""
    from llmfleet.demo import run_demo

    stack.install()
    try:
        console.print("[bold]Starting the local stack[/bold] (PostgreSQL, Kafka, Triton x2 as emulated GPUs)...")
        info = stack.up()
        servers = [(name, server["http_url"]) for name, server in info["triton"].items()]
        run = asyncio.run(run_demo(info["kafka"]["bootstrap"], servers))
        table = Table(title=f"{len(run.results)}/{run.sent} requests came back through Kafka in {run.wall_s:.1f}s")
        for column in ("prompt", "status", "server", "tokens", "ms"):
            table.add_column(column, no_wrap=True)
        table.add_column("generated text (random weights: gibberish by design)", overflow="fold")
        for request_id, prompt in run.prompts.items():
            result = run.results.get(request_id)
            if result is None:
                table.add_row(prompt, "[red]no result[/red]", "", "", "", "")
                continue
            table.add_row(
                prompt,
                result.status,
                result.server_id or "",
                str(result.tokens_out),
                f"{result.timings.total_ms:.0f}",
                repr(result.text),
            )
        console.print(table)
        console.print("The model is a small random-weight LM on CPU; the Triton servers emulate GPUs.")
        if len(run.results) != run.sent or any(r.status != "ok" for r in run.results.values()):
            raise typer.Exit(1)
    finally:
        if not keep:
            stack.down()
            console.print("stack stopped; logs stay in .cache/stack/logs")


if __name__ == "__main__":
    app()
