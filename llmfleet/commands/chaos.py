"""`llmfleet chaos ...`: faults an operator injects on purpose, to see the platform absorb them.

`spot-reclaim SERVER`: the cloud's spot interruption notice for one server, as a provider adapter
would publish it. The router stops sending the server new batches, the allocator starts a
replacement and stops the server once the replacement serves (or when the notice runs out).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from deploy.local import stack
from llmfleet.commands.console import console
from llmfleet.faults import publish_notice, spot_notice

chaos_app = typer.Typer(no_args_is_help=True, help="inject faults on purpose (spot reclaims)")


def register(app: typer.Typer) -> None:
    """Add the `chaos` group to the CLI."""
    app.add_typer(chaos_app, name="chaos")


@chaos_app.command("spot-reclaim")
def spot_reclaim(
    server_id: Annotated[str, typer.Argument(help="the server the cloud takes back")],
    notice_s: Annotated[float, typer.Option(min=0, help="seconds until the reclaim (AWS: 120)")] = 120.0,
    region: Annotated[str, typer.Option(help="the server's region, as the notice names it")] = "local",
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka bootstrap servers (default: the local platform's)")
    ] = None,
) -> None:
    """Give a spot interruption notice for SERVER: it is reclaimed NOTICE_S seconds from now."""
    if bootstrap is None:
        kafka = stack.status()["kafka"]
        if not kafka.get("running"):
            console.print("[red]the platform is not running: `llmfleet up` first, or pass --bootstrap[/red]")
            raise typer.Exit(2)
        bootstrap = str(kafka["bootstrap"])
    notice = spot_notice(server_id, region, notice_s)
    asyncio.run(publish_notice(bootstrap, notice))
    console.print(f"spot interruption notice for {server_id}: reclaimed at {notice.reclaim_at:%H:%M:%S} UTC")
