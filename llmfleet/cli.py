"""`llmfleet`: run the platform locally, see its state, replay traces, run the demo, simulate, manage keys.

This module is the typer root; each group of commands lives in its own module and registers itself.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from llmfleet import target
from llmfleet.commands import chaos, runs, stack
from llmfleet.cost import register as register_cost
from llmfleet.keys import register as register_keys
from llmfleet.simulate.command import simulate as simulate_command

app = typer.Typer(
    no_args_is_help=True,
    help="llmfleet: control plane for LLM serving fleets. Without --bootstrap, --database-url, --metrics or"
    " --context, commands use the local stack (`llmfleet up`).",
)


@app.callback()
def main(
    ctx: typer.Context,
    bootstrap: Annotated[
        str | None, typer.Option(envvar="LLMFLEET_BOOTSTRAP", help="Kafka bootstrap servers, host:port[,host:port]")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="LLMFLEET_DATABASE_URL",
            help="PostgreSQL URL; {service} stands for each service's role, e.g."
            " postgresql+asyncpg://{service}:pw-{service}@db:5432/llmfleet (LLMFLEET_<SERVICE>_DATABASE_URL wins)",
        ),
    ] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            envvar="LLMFLEET_METRICS",
            help="services' metrics ports: http://{service}:9100, or service=http://host:port (repeatable)",
        ),
    ] = None,
    context: Annotated[
        str | None, typer.Option(envvar="LLMFLEET_CONTEXT", help="a named context from the contexts file")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(envvar=target.CONFIG_ENV, help="contexts file (default ~/.config/llmfleet/contexts.yaml)"),
    ] = None,
) -> None:
    """Where the platform is: given here, in a context, or the local stack's state file."""
    try:
        where = target.resolve(bootstrap, database_url, metrics or (), context, config)
    except target.TargetError as error:
        raise typer.BadParameter(str(error)) from None
    ctx.call_on_close(target.use(where))


# aiokafka logs a warning per partition while a just-created topic elects its leader; it retries.
logging.getLogger("aiokafka").setLevel(logging.ERROR)

stack.register(app)  # install, up, down, status
runs.register(app)  # demo, replay
app.command("simulate")(simulate_command)
register_keys(app)  # keys, tenants
chaos.register(app)  # chaos spot-reclaim
register_cost(app)  # cost recommendations, cost apply

if __name__ == "__main__":
    app()
