"""`llmfleet install | up | down | status`: the local platform's processes and its state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import typer
from rich.table import Table

from deploy.local import stack
from deploy.local.common import stack_paths
from llmfleet import platform, target
from llmfleet.commands.console import Output, OutputOption, console, yes


def install() -> None:
    """Fetch the Kafka jars and the Triton binary into the cache (done once; `up` does it too)."""
    stack.install()
    console.print("[green]installed[/green]")


def up(
    stack_only: bool = typer.Option(
        False, "--stack-only", help="only PostgreSQL, Kafka and two Triton servers (for development)"
    ),
    secure: bool = typer.Option(
        False, "--secure", help="Kafka: SASL_SSL, SCRAM, ACLs per service; PostgreSQL: TLS (docs/security.md)"
    ),
) -> None:
    """Start the platform: PostgreSQL, Kafka (with topics) and the six services; idempotent.

    Triton servers are started by the allocator when the scaler asks for capacity.
    """
    stack.install()
    if stack_only:
        stack.up(secure=secure)
    else:
        from llmfleet.demo import DemoOptions, platform_settings
        from llmfleet.demo_fleet import DEMO_MODELS

        folder = stack_paths().run
        fleet = platform.fleet_with_models(DEMO_MODELS, folder)
        platform.up(platform_settings(DemoOptions(), fleet, "fleet"), secure=secure)
    print_stack(stack.status())
    if secure:
        folder = stack_paths().run / "secure"
        console.print(f"secure: CA {folder / 'ca.pem'}, passwords {folder / 'credentials.json'} (docs/security.md)")
    console.print("`llmfleet status` shows the platform's state; `llmfleet down` stops everything")


def down() -> None:
    """Stop the services, their Triton servers, Kafka and PostgreSQL (data and logs stay)."""
    clean = platform.down()
    if clean:
        console.print("services: " + ", ".join(f"{s} {'stopped' if ok else 'killed'}" for s, ok in clean.items()))
    console.print("[green]stopped[/green]")


def status(output: OutputOption = Output.table) -> None:
    """The platform's state and health: servers, models and tiers, queues, firing alerts, cost per hour.

    Exit code: 0 healthy, 1 unhealthy (a service not ready, a schema not migrated, a topic missing),
    3 unreachable (the broker or every database does not answer, or nothing runs); 2 is a usage error.
    """
    from llmfleet import status as reading

    where = target.current()
    found = asyncio.run(reading.inspect(where, reading.PROBES))
    local = stack.status() if where.local else None
    # The local stack without PostgreSQL has no platform state to show (as before the health checks).
    fleet = None if local is not None and not local["postgres"].get("running") else found["platform"]
    health = found["health"]
    if output is Output.json:
        state = {"target": found["target"], "health": health, "platform": fleet}
        if local is not None:
            from deploy.local import services

            state |= {"stack": local, "services": services.status()}
        console.print_json(json.dumps(state, default=str))
    else:
        if local is not None:
            print_stack(local)
        if fleet is not None:
            reading.render_platform_status(console, fleet)
        reading.render_health(console, found["target"], health)
    if health["exit_code"]:
        raise typer.Exit(health["exit_code"])


def print_stack(current: dict[str, Any]) -> None:
    """The stack's table: PostgreSQL, Kafka, each service (the gateway at its API's URL), Triton servers."""
    from deploy.local import services

    table = Table(title="llmfleet local platform")
    for column in ("component", "running", "address", "what"):
        table.add_column(column, no_wrap=True)
    pg, kf = current["postgres"], current["kafka"]
    pg_version = pg.get("version", "").removeprefix("postgres (PostgreSQL) ").split(" ")[0]
    table.add_row("postgres", yes(pg.get("running")), f"127.0.0.1:{pg.get('port', '-')}", f"PostgreSQL {pg_version}")
    table.add_row("kafka", yes(kf.get("running")), kf.get("bootstrap", "-"), f"Kafka {kf.get('version', '')} (KRaft)")
    for name, svc in services.status().items():
        table.add_row(name, yes(svc.get("running")), *service_row(svc))
    for name, server in sorted(current["triton"].items()):
        gpu = f"emulated {server.get('gpu_type')} timed as {server.get('emulates') or 'tinylm on this CPU'}"
        table.add_row(
            name, yes(server.get("running")), server.get("http_url", "-"), f"Triton, {gpu}, {server.get('region')}"
        )
    console.print(table)
    console.print(f"logs: {current['logs']}")


def service_row(svc: Mapping[str, Any]) -> tuple[str, str]:
    """A service's address and description: the gateway's is its OpenAI API, the others' their metrics."""
    if http_url := svc.get("http_url"):
        return str(http_url), f"OpenAI API (pid {svc.get('pid')}; metrics {svc.get('metrics_url', '-')})"
    return str(svc.get("metrics_url", "-")), f"service (pid {svc.get('pid')})"


def register(app: typer.Typer) -> None:
    """Add install, up, down and status to the main CLI."""
    for command in (install, up, down, status):
        app.command()(command)
